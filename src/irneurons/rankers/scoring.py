"""Scoring for the kinds other than cross-encoders (monoT5, LLM re-rankers, bi-encoders) and dense retrieval.

Cross-encoders are scored by :func:`irneurons.rankers.scoring.score_pairs`, which hands every other kind to
:func:`score_pairs_any`. Bi-encoders embed each distinct query and passage once (length-sorted batches) and
score pairs by the spec's similarity; prompted kinds encode pairs in length-sorted batches
(:func:`irneurons.rankers.encoding.encode_pairs`). ``before_forward(batch)`` gets each batch's inputs with a ``parts``
entry (part slots per token, :mod:`irneurons.rankers.parts`), as pruning hooks restricted to a part need.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from irneurons.rankers import parts as P
from irneurons.numerics import resolve_bf16
from irneurons.rankers.pairs import answer_ids, encode_pairs, encode_streams, single_stream_parts
from irneurons.rankers.relevance import embed_rows, model_kwargs, relevance_rows, similarity
from irneurons.rankers.encoding import encode_pair_texts, query_budget, query_share, truncate_queries
from irneurons.rankers.kinds import spec_of
from irneurons.rankers.relevance import relevance

log = logging.getLogger(__name__)


def _batches_by_length(lengths, batch_size):
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def embed_texts(model, tokenizer, texts, *, stream: str, max_length: int = 128, batch_size: int = 64,
                bf16: bool | str = False, progress: bool = False, before_forward=None) -> torch.Tensor:
    """Pooled bi-encoder embeddings [N, E] (float32 / the weight dtype) of ``texts`` in input order.

    ``stream``: ``query`` or ``passage`` (their part slots differ, see :data:`irneurons.rankers.parts.PART_LABELS`).
    """
    from tqdm.auto import tqdm


    spec = spec_of(model)
    texts = [str(t) for t in texts]
    device = next(model.parameters()).device
    bf16 = resolve_bf16(bf16, device)
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    out = None
    content, special = (P.QUERY, (P.CLS, P.SEP1)) if stream == "query" else (P.PASSAGE, (P.SEP2, P.SEP2))
    with torch.inference_mode():
        for idx in tqdm(_batches_by_length(lengths, batch_size), desc=f"embedding {stream}s", unit="batch",
                        disable=not progress, mininterval=5):
            enc = encode_streams(tokenizer, [texts[i] for i in idx], max_length)
            parts = single_stream_parts(enc, content, special)
            kw = model_kwargs(spec, enc["input_ids"].to(device), enc["attention_mask"].to(device),
                              enc.get("token_type_ids").to(device) if "token_type_ids" in enc else None)
            if before_forward is not None:
                before_forward({**kw, "parts": parts.to(device)})
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                emb = embed_rows(spec, model, kw)
                emb = emb if emb.dtype == torch.float64 else emb.float()  # float64 models stay float64
            if out is None:
                out = torch.empty(len(texts), emb.shape[-1], dtype=emb.dtype)
            out[torch.as_tensor(idx)] = emb.cpu()
    return out if out is not None else torch.empty(0, 0)


def score_pairs_any(model, tokenizer, queries, passages, *, max_length: int = 128, batch_size: int = 64,
                    bf16: bool | str = False, progress: bool = False, before_forward=None,
                    max_query_share: float | None = None) -> np.ndarray:
    """Relevance F of (query, passage) pairs for any kind, in input order (float64)."""
    from tqdm.auto import tqdm


    spec = spec_of(model)
    queries, passages = [str(q) for q in queries], [str(p) for p in passages]
    if len(queries) != len(passages):
        raise ValueError("queries and passages differ in length")
    if not queries:
        return np.empty(0)
    if spec.kind == "bi_encoder":
        queries, _ = truncate_queries(tokenizer, queries, max_length, max_query_share)
        uq, q_index = np.unique(np.array(queries, dtype=object), return_inverse=True)
        up, p_index = np.unique(np.array(passages, dtype=object), return_inverse=True)
        kw = dict(max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress,
                  before_forward=before_forward)
        eq = embed_texts(model, tokenizer, list(uq), stream="query", **kw)
        ep = embed_texts(model, tokenizer, list(up), stream="passage", **kw)
        return similarity(spec, eq[q_index], ep[p_index]).double().numpy()
    device = next(model.parameters()).device
    bf16 = resolve_bf16(bf16, device)
    answers = answer_ids(spec, tokenizer)
    lengths = [len(q) + len(p) for q, p in zip(queries, passages)]  # characters: a cheap proxy to sort by
    scores = np.empty(len(queries), dtype=np.float64)
    with torch.inference_mode():
        for idx in tqdm(_batches_by_length(lengths, batch_size), desc="scoring", unit="batch", disable=not progress,
                        mininterval=5):
            enc = encode_pairs(spec, tokenizer, [queries[i] for i in idx], [passages[i] for i in idx], max_length,
                               max_query_share)
            kw = model_kwargs(spec, enc.input_ids[:, 0].to(device), enc.attention_mask[:, 0].to(device))
            if before_forward is not None:
                before_forward({**kw, "parts": enc.parts[:, 0].to(device)})
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                f = relevance_rows(spec, model, kw, 1, answers)
            scores[idx] = f.double().cpu().numpy()  # exact from bf16 / fp32; no fp32 rounding of fp64 models
    return scores


def dense_retrieve(model, tokenizer, queries: dict, docs: dict, *, depth: int, max_length: int = 128,
                   batch_size: int = 64, bf16: bool | str = False, progress: bool = True, chunk: int = 4096):
    """Exact top-``depth`` dense retrieval: every document embedded once, similarity with every query, exact
    top-k over the whole corpus (document embeddings scored in chunks of ``chunk``). ``queries`` /
    ``docs``: {id: text}. Returns [(qid, doc_id, score, rank)] sorted by query then rank (ties by doc id)."""
    spec = spec_of(model)
    if spec.kind != "bi_encoder":
        raise ValueError(f"first_stage: dense needs a bi-encoder, got kind {spec.kind!r}")
    qids, dids = list(queries), list(docs)
    kw = dict(max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress)
    eq = embed_texts(model, tokenizer, [queries[q] for q in qids], stream="query", **kw)
    ed = embed_texts(model, tokenizer, [docs[d] for d in dids], stream="passage", **kw)
    if spec.similarity == "cosine":
        eq, ed = torch.nn.functional.normalize(eq, dim=-1), torch.nn.functional.normalize(ed, dim=-1)
    k = min(depth, len(dids))
    order_key = np.argsort(np.array(dids, dtype=object), kind="stable")  # tie-break by doc id
    ed_sorted = ed[torch.as_tensor(order_key)]
    rows = []
    for qi, qid in enumerate(qids):
        sims = torch.cat([ed_sorted[i : i + chunk] @ eq[qi] for i in range(0, len(dids), chunk)])
        top = torch.topk(sims.double(), k, sorted=True)
        for rank, (score, j) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            rows.append((qid, dids[order_key[j]], float(score), rank))
    return rows


def score_pairs(
    model,
    tokenizer,
    queries,
    passages,
    *,
    target: str = "auto",
    max_length: int = 128,
    batch_size: int = 64,
    bf16: bool | str = False,
    progress: bool = False,
    before_forward=None,
    max_query_share: float | None = None,
) -> np.ndarray:
    """Relevance F of every (query, passage) pair, in input order (queries truncated by :func:`truncate_queries`).

    Pairs are batched by token length (fewer pad tokens, same scores: padding is masked). ``bf16`` runs the
    forward under bfloat16 autocast (``"auto"``: where the device runs bf16 natively, see
    :mod:`irneurons.numerics`); the head stays fp32 (:func:`keep_head_in_full_precision`). Hooks registered on the model (e.g. pruning masks) apply as usual;
    ``before_forward(encoding)`` is called with each batch's encoding first (part-restricted pruning uses it).
    """
    queries, passages = list(queries), list(passages)

    if spec_of(model).kind != "cross_encoder":
        return score_pairs_any(model, tokenizer, queries, passages, max_length=max_length, batch_size=batch_size,
                               bf16=bf16, progress=progress, before_forward=before_forward,
                               max_query_share=max_query_share)
    batches = encode_batches(tokenizer, queries, passages, max_length=max_length, batch_size=batch_size,
                             max_query_share=max_query_share)
    return score_batches(model, batches, len(queries), target=target,
                         bf16=bf16, progress=progress, before_forward=before_forward)



def encode_batches(tokenizer, queries, passages, *, max_length: int = 128, batch_size: int = 64,
                   max_query_share: float | None = None):
    """[(indices, encoding)]: the pairs sorted by token length (stable) and cut into batches of
    ``batch_size``, each tokenized as :func:`encode` does (queries cut to their budget by :func:`truncate_queries`,
    then passages truncated; padding to the batch's longest pair). Logs how many distinct queries were cut."""
    queries, passages = list(queries), list(passages)
    if len(queries) != len(passages):
        raise ValueError("queries and passages differ in length")
    queries, n_cut = truncate_queries(tokenizer, queries, max_length, max_query_share)
    if n_cut:
        log.info("%d distinct queries truncated to %d tokens (model.max_query_share=%s)", n_cut,
                 query_budget(tokenizer, max_length, max_query_share), query_share(tokenizer, max_query_share))
    lengths = [len(x) for x in tokenizer(queries, passages, truncation="only_second", max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    return [(idx, encode_pair_texts(tokenizer, [queries[i] for i in idx], [passages[i] for i in idx], max_length))
            for idx in (order[i : i + batch_size] for i in range(0, len(order), batch_size))]



def score_batches(model, batches, n_pairs: int, *, target: str = "auto", bf16: bool | str = False,
                  progress: bool = False, before_forward=None) -> np.ndarray:
    """Relevance F of :func:`encode_batches`' batches, scattered back to input order (``n_pairs`` scores)."""
    import torch
    from tqdm.auto import tqdm

    scores = np.empty(n_pairs, dtype=np.float64)
    device = next(model.parameters()).device
    bf16 = resolve_bf16(bf16, device)
    with torch.inference_mode():
        for idx, enc in tqdm(batches, desc="scoring", unit="batch", disable=not progress, mininterval=5):
            enc = enc.to(device)
            if before_forward is not None:
                before_forward(enc)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits
            scores[idx] = relevance(logits.float(), target).double().cpu().numpy()
    return scores
