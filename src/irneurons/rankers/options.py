"""How pairs are scored: one :class:`ScoringOptions` travels through scoring, re-ranking and pruned scoring
instead of six keywords each."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from irneurons.errors import RankerError


@dataclass(frozen=True)
class ScoringOptions:
    """Settings of one scoring run (torch-free).

    Attributes:
        max_length: tokens per pair (per stream for bi-encoders); queries keep at most their share of it.
        batch_size: pairs per forward pass (pairs are batched by length; scores do not depend on it).
        bf16: bfloat16 autocast: True, False or ``"auto"`` (where the device runs it natively,
            :func:`irneurons.numerics.resolve_bf16`); the head stays fp32.
        target: the relevance target of a classification head (``auto``, ``logit``, ``logit_diff``, ``prob``).
        max_query_share: the query-truncation share; None = the tokenizer's policy
            (:func:`irneurons.rankers.encoding.set_query_share`).
        progress: show a progress bar.

    Examples:
        >>> ScoringOptions(max_length=256).batch_size
        64
        >>> ScoringOptions.of(None, batch_size=8) == ScoringOptions(batch_size=8)
        True
    """

    max_length: int = 128
    batch_size: int = 64
    bf16: bool | str = False
    target: str = "auto"
    max_query_share: float | None = None
    progress: bool = False

    @classmethod
    def of(cls, options: ScoringOptions | None = None, **overrides) -> ScoringOptions:
        """``options`` (default: the defaults) with ``overrides`` of its fields; raises :class:`RankerError` for
        a name that is not a field."""
        base = cls() if options is None else options
        if not isinstance(base, cls):
            raise RankerError(f"scoring options must be a ScoringOptions, got {type(base).__name__}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise RankerError(f"unknown scoring option {unknown[0]!r}; valid: {', '.join(f.name for f in fields(cls))}")
        return replace(base, **overrides) if overrides else base
