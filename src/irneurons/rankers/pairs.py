"""How (query, passage) pairs become token ids with parts, for every ranker kind.

Every kind returns an :class:`Encoded` of shape [N, S, T] (S = 1 stream, 2 for bi-encoders). Cross-encoders:
``[CLS] q [SEP] p [SEP]`` (:func:`irneurons.rankers.encoding.encode`, the query-truncation policy); prompted kinds
(monoT5, LLM re-rankers) tokenize each template segment separately and concatenate the ids, so the parts (prefix,
query, middle, passage, suffix) are exact; queries are cut to their budget
(:func:`irneurons.rankers.encoding.query_budget`) and passages to what is left of ``max_length``. Bi-encoders
encode query and passage as two streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irneurons.errors import InputError, RankerError
from irneurons.rankers import parts as P
from irneurons.rankers.encoding import encode, query_budget, truncate_queries
from irneurons.rankers.kinds import RankerSpec


@dataclass
class Encoded:
    """Token ids of N pairs in S streams: [N, S, T] each; ``parts`` holds part slots
    (:mod:`irneurons.rankers.parts`)."""

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
            raise RankerError(f"answer {word!r} is {len(ids)} tokens for this tokenizer; "
                              "model.answers must be single tokens")
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

    queries, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    prefix, middle, suffix = _segments(spec.prompt)

    def tok(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    kind = spec.kind_info
    head = [tokenizer.bos_token_id] if kind.bos and getattr(tokenizer, "add_bos_token", False) \
        and tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if kind.eos and tokenizer.eos_token_id is not None else []
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



def single_stream_parts(enc, content: int, special: tuple[int, int]) -> torch.Tensor:
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



def encode_bi(spec: RankerSpec, tokenizer, queries, passages, max_length: int, share: float | None = None) -> Encoded:
    """Bi-encoders: query and passage as two streams, ``[CLS] text [SEP]`` each ([N, 2, T])."""
    del spec  # the call convention of :attr:`irneurons.rankers.kinds.Kind.encode`

    queries, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    q, p = encode_streams(tokenizer, queries, max_length), encode_streams(tokenizer, passages, max_length)
    qp = single_stream_parts(q, P.QUERY, (P.CLS, P.SEP1))
    pp = single_stream_parts(p, P.PASSAGE, (P.SEP2, P.SEP2))
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



def encode_cross(spec: RankerSpec, tokenizer, queries, passages, max_length: int,
                 share: float | None = None) -> Encoded:
    """Cross-encoders: ``[CLS] q [SEP] p [SEP]`` (:func:`irneurons.rankers.encoding.encode`), parts read from the
    special tokens ([N, 1, T])."""
    del spec  # the call convention of :attr:`irneurons.rankers.kinds.Kind.encode`
    _, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    enc = encode(tokenizer, queries, passages, max_length, max_query_share=share)
    tt = enc.get("token_type_ids")
    parts = P.token_parts(enc["input_ids"], tt, enc["attention_mask"], tokenizer.cls_token_id, tokenizer.sep_token_id)
    return Encoded(enc["input_ids"][:, None], enc["attention_mask"][:, None], None if tt is None else tt[:, None],
                   parts[:, None], n_cut)


def encode_pairs(spec: RankerSpec, tokenizer, queries, passages, max_length: int,
                 share: float | None = None) -> Encoded:
    """Token ids and parts of (query, passage) pairs for ``spec.kind`` (:attr:`irneurons.rankers.kinds.Kind.encode`).

    Args:
        spec: the ranker spec (its kind picks the encoding).
        tokenizer: the model's tokenizer.
        queries, passages: N texts each.
        max_length: tokens per pair (per stream for bi-encoders).
        share: the query-truncation share (None = the tokenizer's policy).

    Returns:
        An :class:`Encoded` with ids, mask, token types (or None) and parts of shape [N, S, T].
    """
    queries, passages = [str(q) for q in queries], [str(p) for p in passages]
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passages; give one passage per query")
    return spec.kind_info.encode(spec, tokenizer, queries, passages, max_length, share)
