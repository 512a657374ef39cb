r"""Model kinds: how a (query, passage) pair becomes token ids with parts, and what the relevance F is.

- ``cross_encoder``: ``[CLS] q [SEP] p [SEP]`` → a 1- or 2-logit head; F by ``target``
  (:func:`irneurons.model.relevance`).
- ``t5`` (monoT5): the prompt (default ``Query: {query} Document: {passage} Relevant:``) + EOS into the encoder,
  the decoder start token into the decoder; F = z(true) − z(false) at the first decoder step.
- ``causal_lm`` (decoder LLM re-rankers): the prompt (:data:`DEFAULT_PROMPTS`), right-padded;
  F = z(yes) − z(no) at the last real position.
- ``bi_encoder``: query and passage encoded separately (two *streams*), pooled (mean over real tokens, or the
  first token), F = cos(e_q, e_p) or e_q · e_p.

Prompted kinds tokenize each template segment separately and concatenate the ids, so the parts (prefix,
query, middle, passage, suffix) are exact; queries are cut to their budget (:func:`irneurons.model.query_budget`)
and passages to what is left of ``max_length``. Every kind returns an :class:`Encoded` of shape [N, S, T]
(S = 1 stream, 2 for bi-encoders) and computes F from model rows laid out stream-major ([S·R, T]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import parts as P

KINDS = ("cross_encoder", "t5", "causal_lm", "bi_encoder")
DEFAULT_PROMPTS = {
    "t5": "Query: {query} Document: {passage} Relevant:",
    "causal_lm": "Judge whether the passage answers the query.\nQuery: {query}\nPassage: {passage}\n"
                 "Is the passage relevant (yes or no)? Answer:",
}
DEFAULT_ANSWERS = {"t5": ("true", "false"), "causal_lm": (" yes", " no")}
POOLINGS = ("mean", "cls")
SIMILARITIES = ("cosine", "dot")


class RankerError(ValueError):
    """A kind / prompt / answer-token problem; the message names the setting."""


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


@dataclass
class Encoded:
    """Token ids of N pairs in S streams: [N, S, T] each; ``parts`` holds part slots (:mod:`irneurons.parts`)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    parts: torch.Tensor
    truncated_queries: int = 0

    @property
    def n_streams(self) -> int:
        return self.input_ids.shape[1]


def pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if tid is not None:
            return int(tid)
    return 0


def answer_ids(spec: RankerSpec, tokenizer) -> tuple[int, int]:
    """Token ids of the two answer words (each must be one token)."""
    out = []
    for word in spec.answers:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise RankerError(f"answer {word!r} is {len(ids)} tokens for this tokenizer; model.answers must be single tokens")
        out.append(int(ids[0]))
    return out[0], out[1]


def _pad_rows(rows: list[tuple[list[int], list[int]]], pad: int):
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    parts = torch.full((len(rows), width), P.PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, p) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i, dtype=torch.long)
        parts[r, : len(p)] = torch.tensor(p, dtype=torch.long)
        mask[r, : len(i)] = 1
    return ids, mask, parts


def _segments(prompt: str) -> tuple[str, str, str]:
    prefix, rest = prompt.split("{query}")
    middle, suffix = rest.split("{passage}")
    return prefix, middle, suffix


def encode_prompted(spec: RankerSpec, tokenizer, queries, passages, max_length: int, share: float | None = None):
    """Prompted kinds: ids = [BOS] prefix query middle passage suffix [EOS (T5)], each segment tokenized alone."""
    from .encoding import query_budget, truncate_queries

    queries, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    prefix, middle, suffix = _segments(spec.prompt)

    def tok(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    head = [tokenizer.bos_token_id] if spec.kind == "causal_lm" and getattr(tokenizer, "add_bos_token", False) \
        and tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if spec.kind == "t5" and tokenizer.eos_token_id is not None else []
    pre, mid, suf = head + tok(prefix), tok(middle), tok(suffix) + tail
    fixed = len(pre) + len(mid) + len(suf)
    budget = query_budget(tokenizer, max_length, share)
    rows = []
    for q, p in zip(queries, passages):
        q_ids = tok(q)[:budget]
        room = max_length - fixed - len(q_ids)
        if room < 1:
            raise RankerError(f"model.max_length={max_length} leaves no room for the passage with this prompt")
        p_ids = tok(p)[:room]
        ids = pre + q_ids + mid + p_ids + suf
        part = ([P.CLS] * len(pre) + [P.QUERY] * len(q_ids) + [P.SEP1] * len(mid) + [P.PASSAGE] * len(p_ids)
                + [P.SEP2] * len(suf))
        rows.append((ids, part))
    ids, mask, parts = _pad_rows(rows, pad_id(tokenizer))
    return Encoded(ids[:, None], mask[:, None], None, parts[:, None], n_cut)


def _single_parts(enc, content: int, special: tuple[int, int]) -> torch.Tensor:
    """Parts of one bi-encoder stream: special tokens → ``special`` (first, rest), content tokens → ``content``."""
    specials = torch.as_tensor(enc["special_tokens_mask"]).bool()
    mask = enc["attention_mask"].bool()
    parts = torch.full(specials.shape, P.PAD, dtype=torch.long)
    parts[mask & ~specials] = content
    first = specials & mask & (torch.arange(specials.shape[1])[None] == 0)
    parts[specials & mask] = special[1]
    parts[first] = special[0]
    return parts


def encode_streams(tokenizer, texts, max_length: int):
    """One bi-encoder stream: ``[CLS] text [SEP]`` padded to the longest (truncated to ``max_length``)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="pt",
                     return_special_tokens_mask=True)


def encode_bi(tokenizer, queries, passages, max_length: int, share: float | None = None) -> Encoded:
    from .encoding import truncate_queries

    queries, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    q, p = encode_streams(tokenizer, queries, max_length), encode_streams(tokenizer, passages, max_length)
    qp = _single_parts(q, P.QUERY, (P.CLS, P.SEP1))
    pp = _single_parts(p, P.PASSAGE, (P.SEP2, P.SEP2))
    width = max(q["input_ids"].shape[1], p["input_ids"].shape[1])
    pad = pad_id(tokenizer)

    def widen(t, value):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    ids = torch.stack([widen(q["input_ids"], pad), widen(p["input_ids"], pad)], 1)
    mask = torch.stack([widen(q["attention_mask"], 0), widen(p["attention_mask"], 0)], 1)
    parts = torch.stack([widen(qp, P.PAD), widen(pp, P.PAD)], 1)
    tt = None
    if "token_type_ids" in q:
        tt = torch.zeros_like(ids)
    return Encoded(ids, mask, tt, parts, n_cut)


def encode_pairs(spec: RankerSpec, tokenizer, queries, passages, max_length: int, share: float | None = None) -> Encoded:
    """Token ids and parts of (query, passage) pairs for ``spec.kind`` ([N, S, T])."""
    queries, passages = [str(q) for q in queries], [str(p) for p in passages]
    if len(queries) != len(passages):
        raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    if spec.kind == "cross_encoder":
        from .encoding import encode, truncate_queries

        _, n_cut = truncate_queries(tokenizer, queries, max_length, share)
        enc = encode(tokenizer, queries, passages, max_length, max_query_share=share)
        tt = enc.get("token_type_ids")
        parts = P.token_parts(enc["input_ids"], tt, enc["attention_mask"], tokenizer.cls_token_id, tokenizer.sep_token_id)
        return Encoded(enc["input_ids"][:, None], enc["attention_mask"][:, None], None if tt is None else tt[:, None],
                       parts[:, None], n_cut)
    if spec.kind == "bi_encoder":
        return encode_bi(tokenizer, queries, passages, max_length, share)
    return encode_prompted(spec, tokenizer, queries, passages, max_length, share)


# --------------------------------------------------------------------------- relevance F


def pool(spec: RankerSpec, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding of each row: mean over real tokens, or the first token."""
    if spec.pooling == "cls":
        return hidden[:, 0]
    m = mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def similarity(spec: RankerSpec, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    if spec.similarity == "cosine":
        return torch.nn.functional.cosine_similarity(q, d, dim=-1, eps=1e-12)
    return (q * d).sum(-1)


def embed_rows(spec: RankerSpec, model, kwargs: dict) -> torch.Tensor:
    """Pooled embeddings of bi-encoder rows (full precision)."""
    hidden = model(**kwargs).last_hidden_state
    return pool(spec, hidden.to(next(model.parameters()).dtype), kwargs["attention_mask"])


def model_kwargs(spec: RankerSpec, ids, mask, token_type_ids=None) -> dict:
    kw = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids is not None and spec.kind in ("cross_encoder", "bi_encoder"):
        kw["token_type_ids"] = token_type_ids
    return kw


def relevance_rows(spec: RankerSpec, model, kwargs: dict, n_streams: int = 1, answers: tuple[int, int] | None = None):
    """F per point from model rows laid out stream-major ([S·R, T] → [R])."""
    from .model import relevance

    weight_dtype = next(model.parameters()).dtype
    if spec.kind == "cross_encoder":
        logits = model(**kwargs).logits
        return relevance(logits.to(torch.float32) if logits.dtype == torch.bfloat16 else logits, spec.target)
    if spec.kind == "bi_encoder":
        emb = embed_rows(spec, model, kwargs)
        n = emb.shape[0] // n_streams
        return similarity(spec, emb[:n], emb[n:])
    if answers is None:
        raise RankerError(f"kind {spec.kind!r} needs the answer token ids")
    yes, no = answers
    if spec.kind == "t5":
        rows = kwargs["input_ids"].shape[0]
        start = model.config.decoder_start_token_id
        dec = torch.full((rows, 1), 0 if start is None else int(start), dtype=torch.long, device=kwargs["input_ids"].device)
        logits = model(**kwargs, decoder_input_ids=dec, use_cache=False).logits[:, 0]
    else:
        hidden = model.base_model(**kwargs, use_cache=False).last_hidden_state
        last = kwargs["attention_mask"].sum(1) - 1
        logits = model.lm_head(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
    logits = logits.to(weight_dtype) if logits.dtype == torch.bfloat16 else logits
    return logits[:, yes] - logits[:, no]
