"""Query–passage encoding for cross-encoders: the query-truncation policy, then ``[CLS] q [SEP] p [SEP]``.

A query keeps at most ⌊share · max_length⌋ tokens (:func:`query_budget`; the share is attached to the tokenizer,
:func:`set_query_share`); longer queries are cut as strings at a token boundary, then only the passage is
truncated. Fine-tuning, scoring, pruning, NIG and token attributions all encode through here.
"""

from __future__ import annotations

from irneurons.errors import ModelError

DEFAULT_QUERY_SHARE = 0.5
QUERY_SHARE_ATTR = "irneurons_max_query_share"


def set_query_share(tokenizer, share: float | None):
    """Attach the query-truncation policy (``model.max_query_share``) to ``tokenizer``: every encoding made with
    it (:func:`encode`, :func:`encode_batches`, hence scoring, pruning, NIG and fine-tuning) then uses that share
    unless a caller passes one. ``None`` keeps :data:`DEFAULT_QUERY_SHARE`. Returns the tokenizer."""
    setattr(tokenizer, QUERY_SHARE_ATTR, float(DEFAULT_QUERY_SHARE if share is None else share))
    return tokenizer


def query_share(tokenizer, share: float | None = None) -> float:
    """The share to use: ``share`` if given, else the tokenizer's (:func:`set_query_share`), else the default."""
    share = getattr(tokenizer, QUERY_SHARE_ATTR, DEFAULT_QUERY_SHARE) if share is None else share
    share = float(share)
    if not 0 < share < 1:
        raise ModelError(f"model.max_query_share must be in (0, 1), got {share}")
    return share


def query_budget(tokenizer, max_length: int, share: float | None = None) -> int:
    """Most tokens a query keeps in a pair: ⌊share · max_length⌋, capped so that the special tokens and at least
    one passage token still fit (the passage is then truncated to the rest: it can never be "too short")."""
    share = query_share(tokenizer, share)
    room = int(max_length) - tokenizer.num_special_tokens_to_add(pair=True) - 1
    budget = min(int(share * int(max_length)), room)
    if budget < 1:
        raise ModelError(f"model.max_length={max_length} leaves no room for query tokens (max_query_share={share})")
    return budget


def _cut_query(tokenizer, text: str, ids, offsets, budget: int) -> str:
    """The longest prefix of ``text`` that tokenizes to at most ``budget`` tokens (cut at a token boundary)."""
    for keep in range(budget, 0, -1):
        if offsets is not None:
            prefix = text[: offsets[keep - 1][1]].rstrip()
        else:  # slow tokenizer: no offsets; decode the kept ids
            prefix = tokenizer.decode(ids[:keep], skip_special_tokens=True).strip()
        if len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) <= budget:
            return prefix
    return ""


def truncate_queries(tokenizer, queries, max_length: int, share: float | None = None) -> tuple[list[str], int]:
    """The query-truncation policy: queries longer than :func:`query_budget` tokens are cut (as strings, at a
    token boundary) to that budget; the others are returned unchanged (same string, so their encodings are
    bit-identical to encoding them whole). Returns (queries, number of distinct query texts that were cut).

    Used by :func:`encode` and :func:`encode_batches`, hence identically by fine-tuning, scoring (re-ranking,
    pruning), NIG attribution and token attributions; pass the result's count to the job's log and outputs.
    """
    queries = [str(q) for q in queries]
    budget = query_budget(tokenizer, max_length, share)
    unique = list(dict.fromkeys(queries))
    if not unique:
        return queries, 0
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(unique, add_special_tokens=False, return_offsets_mapping=fast)
    offsets = enc["offset_mapping"] if fast else [None] * len(unique)
    cut = {
        q: _cut_query(tokenizer, q, ids, offs, budget)
        for q, ids, offs in zip(unique, enc["input_ids"], offsets)
        if len(ids) > budget
    }
    if not cut:
        return queries, 0
    return [cut.get(q, q) for q in queries], len(cut)


def truncation_record(tokenizer, queries, max_length: int, share: float | None = None) -> dict:
    """{truncated_queries, queries, query_budget, max_query_share} of a job's queries (distinct texts), for its
    log and outputs."""
    unique = list(dict.fromkeys(str(q) for q in queries))
    _, n = truncate_queries(tokenizer, unique, max_length, share)
    return {"truncated_queries": n, "queries": len(unique), "query_budget": query_budget(tokenizer, max_length, share),
            "max_query_share": query_share(tokenizer, share)}


def truncation_message(record: dict) -> str:
    """One log line for a :func:`truncation_record`."""
    return (f"{record['truncated_queries']} of {record['queries']} queries truncated to {record['query_budget']} "
            f"tokens (model.max_query_share={record['max_query_share']})")


def encode_pair_texts(tokenizer, queries, passages, max_length: int, padding="longest"):
    """Tokenize the pairs as given (no query cut): only the passage is truncated to ``max_length``."""
    return tokenizer(
        list(queries), list(passages), truncation="only_second", max_length=max_length, padding=padding,
        return_tensors="pt",
    )


def encode(tokenizer, queries, passages, max_length: int, padding="longest", max_query_share: float | None = None):
    """``[CLS] query [SEP] passage [SEP]``: queries cut to their budget (:func:`truncate_queries`), then only the
    passage is truncated to ``max_length``. ``max_query_share``: None = the tokenizer's policy
    (:func:`set_query_share`)."""
    queries, _ = truncate_queries(tokenizer, queries, max_length, max_query_share)
    return encode_pair_texts(tokenizer, queries, passages, max_length, padding)


