"""Input-level attributions for the token view: integrated gradients of the relevance score F with respect to
the word embeddings (captum ``LayerIntegratedGradients``), summed over the embedding dimension per token.

IG_t = (e_t − e'_t) · ∫₀¹ ∂F/∂e_t (e' + α (e − e')) dα, with e the word embeddings of the input and e' those of
the baseline tokens (see :func:`irneurons.rankers.parts.baseline_ids`; positions, token types and mask stay real).
Completeness: Σ_t IG_t ≈ F(x) − F(x') (the ``delta`` column is captum's convergence delta).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pandas as pd
import torch

from irneurons.errors import InputError
from irneurons.rankers.encoding import encode
from irneurons.rankers.parts import BASELINES, PART_NAMES, baseline_ids, token_parts
from irneurons.rankers.relevance import relevance
from irneurons.units import hooks as units


@dataclass(frozen=True)
class TokenIGSettings:
    """How the token view's input-level IG is computed.

    Args:
        baseline: which tokens become [PAD] in x' (:data:`irneurons.rankers.parts.BASELINES`).
        target: relevance target of the classification head (``auto`` | ``logit`` | ``logit_diff`` | ``prob``).
        steps: captum's ``n_steps``.
        max_length: tokens per pair.
        max_query_share: the query-truncation share (None = the tokenizer's policy).

    Examples:
        >>> TokenIGSettings(steps=8).steps
        8
    """

    baseline: str = "pad_query_passage"
    target: str = "auto"
    steps: int = 32
    max_length: int = 128
    max_query_share: float | None = None

    def __post_init__(self):
        if self.baseline not in BASELINES:
            raise InputError(f"token IG baseline {self.baseline!r}: must be one of {', '.join(BASELINES)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"token IG steps={self.steps!r}: must be an integer >= 1")


def token_attributions(model, tokenizer, queries, passages, *, pair_ids, labels,
                       settings: TokenIGSettings | None = None, **overrides) -> pd.DataFrame:
    """Input-level IG of every real token of each pair (maths: module docstring).

    Pairs are encoded as the re-ranker encodes them (queries cut by
    :func:`irneurons.rankers.encoding.truncate_queries`).

    Args:
        model: a cross-encoder; tokenizer: its tokenizer.
        queries, passages: N texts each.
        pair_ids, labels: N ids and N labels (copied into the rows).
        settings: :class:`TokenIGSettings` (None = its defaults).
        **overrides: :class:`TokenIGSettings` fields that win over ``settings`` (``steps=``, ``baseline=``, ...).

    Returns:
        DataFrame with one row per token: pair_id, label, f_x, f_baseline, delta (captum's convergence delta),
        position, token, part, attribution (IG summed over the embedding dimension).

    Examples:
        >>> token_attributions(model, tok, ["heat"], ["heat flux"], pair_ids=["p"], labels=[1],
        ...                    steps=8)  # doctest: +SKIP
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(TokenIGSettings)})
    if unknown:
        raise InputError(f"{unknown[0]!r} is not a token IG setting; valid: "
                         f"{', '.join(f.name for f in fields(TokenIGSettings))}")
    from captum.attr import LayerIntegratedGradients

    opts = replace(settings or TokenIGSettings(), **overrides)
    baseline, target, steps, max_length = opts.baseline, opts.target, opts.steps, opts.max_length

    model.eval()
    rows = []
    for pid, label, q, p in zip(pair_ids, labels, queries, passages):
        enc = encode(tokenizer, [q], [p], max_length, max_query_share=opts.max_query_share)
        parts = token_parts(enc["input_ids"], enc.get("token_type_ids"), enc["attention_mask"],
                            tokenizer.cls_token_id, tokenizer.sep_token_id)
        base = baseline_ids(enc["input_ids"], parts, tokenizer.pad_token_id, baseline)
        extra = {k: v for k, v in enc.items() if k != "input_ids"}

        def forward(input_ids):
            n = input_ids.shape[0]
            kw = {k: v.expand(n, -1) for k, v in extra.items()}
            return relevance(model(input_ids=input_ids, **kw).logits, target)

        lig = LayerIntegratedGradients(forward, units.word_embeddings(model))
        attr, delta = lig.attribute(enc["input_ids"], baselines=base, n_steps=steps, internal_batch_size=steps,
                                    return_convergence_delta=True)
        with torch.no_grad():
            f_x, f_b = forward(enc["input_ids"]).item(), forward(base).item()
        per_token = attr.sum(-1)[0].detach().numpy()
        ids = enc["input_ids"][0].tolist()
        for pos, (tok, part, a) in enumerate(zip(tokenizer.convert_ids_to_tokens(ids), parts[0].tolist(), per_token)):
            rows.append({"pair_id": pid, "label": int(label), "f_x": f_x, "f_baseline": f_b,
                         "delta": float(delta.item()), "position": pos, "token": tok, "part": PART_NAMES[part],
                         "attribution": float(a)})
    return pd.DataFrame(rows)


def example_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` relevant and ``n`` non-relevant pairs by pair_id (deterministic)."""
    ordered = pairs.sort_values("pair_id")
    return pd.concat([ordered[ordered["label"] == 1].head(n), ordered[ordered["label"] == 0].head(n)])
