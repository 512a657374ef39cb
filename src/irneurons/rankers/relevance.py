"""The relevance target F of every ranker kind, from a model's outputs.

- ``cross_encoder``: F by ``target`` from the head's logits z: ``logit`` → z₀ (1-logit heads), ``logit_diff`` →
  z₁ − z₀ (2-class heads), ``prob`` → σ(z₀) or softmax(z)₁.
- ``t5`` (monoT5): F = z(true) − z(false) at the first decoder step.
- ``causal_lm``: F = z(yes) − z(no) at the last real position.
- ``bi_encoder``: e = pool(hidden) (mean over real tokens, or the first token); F = cos(e_q, e_p) or e_q · e_p.

Model rows are laid out stream-major ([S·R, T]) for bi-encoders.
"""

from __future__ import annotations

import torch

from irneurons.errors import ModelError, RankerError
from irneurons.rankers.kinds import RankerSpec

TARGETS = ("auto", "logit", "logit_diff", "prob")



def resolve_target(target: str, num_labels: int) -> str:
    """``auto`` → ``logit`` for 1-logit heads, ``logit_diff`` for 2-class heads; check the others fit the head."""
    if target not in TARGETS:
        raise ModelError(f"target '{target}' is not one of {TARGETS}")
    if num_labels not in (1, 2):
        raise ModelError(f"relevance target needs a 1- or 2-logit head, model has {num_labels}")
    if target == "auto":
        return "logit" if num_labels == 1 else "logit_diff"
    if target == "logit" and num_labels != 1:
        raise ModelError("target 'logit' needs a 1-logit head; use 'logit_diff' for 2 classes")
    if target == "logit_diff" and num_labels != 2:
        raise ModelError("target 'logit_diff' needs a 2-class head; use 'logit' for 1 logit")
    return target



def relevance(logits, target: str):
    """Relevance target F from logits [B, num_labels]:
    ``logit`` → z₀ (1-logit models); ``logit_diff`` → z₁ − z₀; ``prob`` → σ(z₀) or softmax(z)₁."""
    target = resolve_target(target, logits.shape[-1])
    if target == "logit":
        return logits[..., 0]
    if target == "logit_diff":
        return logits[..., 1] - logits[..., 0]
    if logits.shape[-1] == 1:
        return logits[..., 0].sigmoid()
    return logits.softmax(-1)[..., 1]


def pool(spec: RankerSpec, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding of each row: mean over real tokens, or the first token."""
    if spec.pooling == "cls":
        return hidden[:, 0]
    m = mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)



def similarity(spec: RankerSpec, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Similarity of embeddings [..., E] × [..., E] → [...]: cosine or dot product (``spec.similarity``)."""
    if spec.similarity == "cosine":
        return torch.nn.functional.cosine_similarity(q, d, dim=-1, eps=1e-12)
    if spec.similarity == "dot":
        return (q * d).sum(-1)
    raise RankerError(f"model.similarity {spec.similarity!r} is not one of ('cosine', 'dot')")


def embed_rows(spec: RankerSpec, model, kwargs: dict) -> torch.Tensor:
    """Pooled embeddings of bi-encoder rows (full precision)."""
    hidden = model(**kwargs).last_hidden_state
    return pool(spec, hidden.to(next(model.parameters()).dtype), kwargs["attention_mask"])



def model_kwargs(spec: RankerSpec, ids, mask, token_type_ids=None) -> dict:
    """Forward keywords of rows [R, T]: ids and mask, and token types where the kind takes them."""
    kw = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids is not None and spec.kind_info.token_type_ids:
        kw["token_type_ids"] = token_type_ids
    return kw


def relevance_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 1, answers: tuple[int, int] | None = None):
    """F per point from model rows laid out stream-major ([S·R, T] → [R]), by the kind's
    :attr:`irneurons.rankers.kinds.Kind.relevance`; ``answers``: the answer token ids of prompted kinds."""
    return spec.kind_info.relevance(spec, model, kwargs, n_streams, answers)


def head_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 1, answers=None):
    """Cross-encoders: F from the classification head's logits by ``spec.target`` (bf16 logits in fp32)."""
    logits = model(**kwargs).logits
    return relevance(logits.to(torch.float32) if logits.dtype == torch.bfloat16 else logits, spec.target)


def similarity_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 2, answers=None):
    """Bi-encoders: F = similarity of the pooled query rows (first half) and passage rows (second half)."""
    emb = embed_rows(spec, model, kwargs)
    n = emb.shape[0] // n_streams
    return similarity(spec, emb[:n], emb[n:])


def _answer_margin(spec: RankerSpec, model, logits, answers):
    """z(first answer) − z(second answer) of logits [R, V] (bf16 logits in the weight dtype)."""
    yes, no = answers
    weight_dtype = next(model.parameters()).dtype
    logits = logits.to(weight_dtype) if logits.dtype == torch.bfloat16 else logits
    return logits[:, yes] - logits[:, no]


def decoder_step_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 1, answers=None):
    """Sequence-to-sequence models (monoT5): F = z(yes) − z(no) at the first decoder step."""
    if answers is None:
        raise RankerError(f"kind {spec.kind!r} needs the answer token ids")
    rows = kwargs["input_ids"].shape[0]
    start = model.config.decoder_start_token_id
    dec = torch.full((rows, 1), 0 if start is None else int(start), dtype=torch.long, device=kwargs["input_ids"].device)
    logits = model(**kwargs, decoder_input_ids=dec, use_cache=False).logits[:, 0]
    return _answer_margin(spec, model, logits, answers)


def last_token_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 1, answers=None):
    """Decoder LLMs (right-padded): F = z(yes) − z(no) at the last real position."""
    if answers is None:
        raise RankerError(f"kind {spec.kind!r} needs the answer token ids")
    hidden = model.base_model(**kwargs, use_cache=False).last_hidden_state
    last = kwargs["attention_mask"].sum(1) - 1
    logits = model.lm_head(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
    return _answer_margin(spec, model, logits, answers)
