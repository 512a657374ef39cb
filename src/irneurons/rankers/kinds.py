r"""Model kinds: how a (query, passage) pair becomes token ids with parts, and what the relevance F is.

- ``cross_encoder``: ``[CLS] q [SEP] p [SEP]`` → a 1- or 2-logit head; F by ``target``
  (:func:`irneurons.rankers.relevance.relevance`).
- ``t5`` (monoT5): the prompt (default ``Query: {query} Document: {passage} Relevant:``) + EOS into the encoder,
  the decoder start token into the decoder; F = z(true) − z(false) at the first decoder step.
- ``causal_lm`` (decoder LLM re-rankers): the prompt (:data:`DEFAULT_PROMPTS`), right-padded;
  F = z(yes) − z(no) at the last real position.
- ``bi_encoder``: query and passage encoded separately (two *streams*), pooled (mean over real tokens, or the
  first token), F = cos(e_q, e_p) or e_q · e_p.

Prompted kinds tokenize each template segment separately and concatenate the ids, so the parts (prefix,
query, middle, passage, suffix) are exact; queries are cut to their budget (:func:`irneurons.rankers.loading.query_budget`)
and passages to what is left of ``max_length``. Every kind returns an :class:`Encoded` of shape [N, S, T]
(S = 1 stream, 2 for bi-encoders) and computes F from model rows laid out stream-major ([S·R, T]).
"""

from __future__ import annotations

from irneurons.errors import RankerError
import json
from dataclasses import dataclass, replace
from pathlib import Path



KINDS = ("cross_encoder", "t5", "causal_lm", "bi_encoder")
DEFAULT_PROMPTS = {
    "t5": "Query: {query} Document: {passage} Relevant:",
    "causal_lm": "Judge whether the passage answers the query.\nQuery: {query}\nPassage: {passage}\n"
                 "Is the passage relevant (yes or no)? Answer:",
}
DEFAULT_ANSWERS = {"t5": ("true", "false"), "causal_lm": (" yes", " no")}
POOLINGS = ("mean", "cls")
SIMILARITIES = ("cosine", "dot")


@dataclass(frozen=True)
class RankerSpec:
    """How to use a model as a ranker (``model.kind`` and its settings)."""

    kind: str = "cross_encoder"
    target: str = "auto"
    prompt: str | None = None
    answers: tuple[str, str] | None = None
    pooling: str = "mean"
    similarity: str = "cosine"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise RankerError(f"model.kind {self.kind!r} is not one of {KINDS}")
        if self.pooling not in POOLINGS:
            raise RankerError(f"model.pooling {self.pooling!r} is not one of {POOLINGS}")
        if self.similarity not in SIMILARITIES:
            raise RankerError(f"model.similarity {self.similarity!r} is not one of {SIMILARITIES}")
        if self.kind in DEFAULT_PROMPTS:
            prompt = self.prompt or DEFAULT_PROMPTS[self.kind]
            if prompt.count("{query}") != 1 or prompt.count("{passage}") != 1 or prompt.index("{query}") > prompt.index("{passage}"):
                raise RankerError(f"model.prompt must hold {{query}} then {{passage}} once each, got {prompt!r}")
            object.__setattr__(self, "prompt", prompt)
            object.__setattr__(self, "answers", tuple(self.answers or DEFAULT_ANSWERS[self.kind]))

    @property
    def n_streams(self) -> int:
        return 2 if self.kind == "bi_encoder" else 1


SPEC_ATTR = "irneurons_spec"


def attach(model, spec: RankerSpec):
    """Attach ``spec`` to ``model`` (scoring, pruning and NIG read it with :func:`spec_of`); returns the model."""
    setattr(model, SPEC_ATTR, spec)
    return model


def spec_of(model, target: str | None = None) -> RankerSpec:
    """The spec attached to ``model`` (a cross-encoder spec if none); ``target`` overrides its target."""
    spec = getattr(model, SPEC_ATTR, None) or RankerSpec()
    return replace(spec, target=target) if target is not None and spec.kind == "cross_encoder" else spec


def detect_kind(hf_config, folder: str | None = None) -> str:
    """Kind from a model's config: T5 → ``t5``; ``*ForCausalLM`` → ``causal_lm``; ``*ForSequenceClassification``
    → ``cross_encoder``; a sentence-transformers folder (``modules.json``) or a bare encoder → ``bi_encoder``."""
    archs = list(getattr(hf_config, "architectures", None) or [])
    if hf_config.model_type in ("t5", "mt5"):
        return "t5"
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal_lm"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "cross_encoder"
    if folder is not None and (Path(folder) / "modules.json").is_file():
        return "bi_encoder"
    if archs and all(a.endswith("Model") for a in archs):
        return "bi_encoder"
    return "cross_encoder"


def sentence_transformers_pooling(folder: str | None) -> tuple[str | None, str | None]:
    """(pooling, similarity) declared by a sentence-transformers folder (``1_Pooling/config.json``, a
    ``Normalize`` module → cosine), or (None, None)."""
    if folder is None or not (Path(folder) / "modules.json").is_file():
        return None, None
    modules = json.loads((Path(folder) / "modules.json").read_text())
    pooling, similarity = None, "dot"
    for m in modules:
        kind = m.get("type", "")
        if kind.endswith("Pooling"):
            cfg_path = Path(folder) / m.get("path", "") / "config.json"
            if cfg_path.is_file():
                cfg = json.loads(cfg_path.read_text())
                pooling = "cls" if cfg.get("pooling_mode_cls_token") else "mean"
        if kind.endswith("Normalize"):
            similarity = "cosine"
    return pooling, similarity


# --------------------------------------------------------------------------- encoding


# --------------------------------------------------------------------------- relevance F


