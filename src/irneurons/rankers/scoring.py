"""Scoring (query, passage) pairs with a ranker of any kind, and dense retrieval.

:func:`score_pairs` hands the pairs to the kind's scorer (:attr:`irneurons.rankers.kinds.Kind.score`):
cross-encoders are encoded in length-sorted batches (:func:`encode_batches`) and scored by :func:`score_batches`;
bi-encoders embed each distinct query and passage once (length-sorted batches) and score pairs by the spec's
similarity; prompted kinds encode pairs in length-sorted batches (:func:`irneurons.rankers.pairs.encode_pairs`).
Settings travel as one :class:`irneurons.rankers.options.ScoringOptions` (keyword overrides of its fields are
accepted too). ``before_forward(batch)`` gets each batch's inputs (with a ``parts`` entry, part slots per token,
:mod:`irneurons.rankers.parts`, for the kinds other than cross-encoders), as pruning hooks restricted to a part need.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from irneurons.errors import InputError, RankerError
from irneurons.numerics import resolve_bf16
from irneurons.rankers import parts as P
from irneurons.rankers.encoding import encode_pair_texts, query_budget, query_share, truncate_queries
from irneurons.rankers.kinds import spec_of
from irneurons.rankers.options import ScoringOptions
from irneurons.rankers.pairs import answer_ids, encode_pairs, encode_streams, single_stream_parts
from irneurons.rankers.relevance import embed_rows, model_kwargs, relevance, relevance_rows, similarity

log = logging.getLogger(__name__)
#: part slots of a bi-encoder stream: (content, (first special token, other special tokens))
STREAM_PARTS = {"query": (P.QUERY, (P.CLS, P.SEP1)), "passage": (P.PASSAGE, (P.SEP2, P.SEP2))}


def _batches_by_length(lengths, batch_size):
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _texts(queries, passages) -> tuple[list[str], list[str]]:
    queries, passages = [str(q) for q in queries], [str(p) for p in passages]
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passages; give one passage per query")
    return queries, passages


def embed_texts(model, tokenizer, texts, options: ScoringOptions | None = None, *, stream: str, before_forward=None,
                **overrides) -> torch.Tensor:
    """Pooled bi-encoder embeddings of ``texts`` in input order.

    Args:
        model, tokenizer: a bi-encoder (:func:`irneurons.rankers.loading.load_ranker`).
        texts: N strings.
        options: max_length, batch_size, bf16, progress (:class:`ScoringOptions`; ``overrides`` of its fields).
        stream: ``query`` or ``passage`` (their part slots differ, :data:`irneurons.rankers.parts.PART_LABELS`).
        before_forward: called with each batch's inputs and ``parts`` before its forward.

    Returns:
        [N, E] float32 (float64 for a float64 model).
    """
    from tqdm.auto import tqdm

    opts = ScoringOptions.of(options, **overrides)
    if stream not in STREAM_PARTS:
        raise RankerError(f"stream {stream!r} is not one of {tuple(STREAM_PARTS)}")
    spec = spec_of(model)
    texts = [str(t) for t in texts]
    device = next(model.parameters()).device
    bf16 = resolve_bf16(opts.bf16, device)
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=opts.max_length)["input_ids"]]
    out = None
    content, special = STREAM_PARTS[stream]
    with torch.inference_mode():
        for idx in tqdm(_batches_by_length(lengths, opts.batch_size), desc=f"embedding {stream}s", unit="batch",
                        disable=not opts.progress, mininterval=5):
            enc = encode_streams(tokenizer, [texts[i] for i in idx], opts.max_length)
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


def score_bi(model, tokenizer, queries, passages, options: ScoringOptions, before_forward=None) -> np.ndarray:
    """Bi-encoders: each distinct (truncated) query and passage embedded once, pairs scored by the similarity."""
    spec = spec_of(model)
    queries, _ = truncate_queries(tokenizer, queries, options.max_length, options.max_query_share)
    uq, q_index = np.unique(np.array(queries, dtype=object), return_inverse=True)
    up, p_index = np.unique(np.array(passages, dtype=object), return_inverse=True)
    eq = embed_texts(model, tokenizer, list(uq), options, stream="query", before_forward=before_forward)
    ep = embed_texts(model, tokenizer, list(up), options, stream="passage", before_forward=before_forward)
    return similarity(spec, eq[q_index], ep[p_index]).double().numpy()


def score_prompted(model, tokenizer, queries, passages, options: ScoringOptions, before_forward=None) -> np.ndarray:
    """Prompted kinds (monoT5, LLM re-rankers): pairs encoded with the prompt in length-sorted batches."""
    from tqdm.auto import tqdm

    spec = spec_of(model)
    device = next(model.parameters()).device
    bf16 = resolve_bf16(options.bf16, device)
    answers = answer_ids(spec, tokenizer)
    lengths = [len(q) + len(p) for q, p in zip(queries, passages)]  # characters: a cheap proxy to sort by
    scores = np.empty(len(queries), dtype=np.float64)
    with torch.inference_mode():
        for idx in tqdm(_batches_by_length(lengths, options.batch_size), desc="scoring", unit="batch",
                        disable=not options.progress, mininterval=5):
            enc = encode_pairs(spec, tokenizer, [queries[i] for i in idx], [passages[i] for i in idx],
                               options.max_length, options.max_query_share)
            kw = model_kwargs(spec, enc.input_ids[:, 0].to(device), enc.attention_mask[:, 0].to(device))
            if before_forward is not None:
                before_forward({**kw, "parts": enc.parts[:, 0].to(device)})
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                f = relevance_rows(spec, model, kw, 1, answers)
            scores[idx] = f.double().cpu().numpy()  # exact from bf16 / fp32; no fp32 rounding of fp64 models
    return scores


def score_cross(model, tokenizer, queries, passages, options: ScoringOptions, before_forward=None) -> np.ndarray:
    """Cross-encoders: :func:`encode_batches` then :func:`score_batches`."""
    batches = encode_batches(tokenizer, queries, passages, options)
    return score_batches(model, batches, len(queries), options, before_forward=before_forward)


def dense_retrieve(model, tokenizer, queries: dict, docs: dict, options: ScoringOptions | None = None, *, depth: int,
                   chunk: int = 4096, **overrides):
    """Exact top-``depth`` dense retrieval with a bi-encoder.

    Every document is embedded once, scored against every query by the spec's similarity, and the exact top-k
    over the whole corpus kept (document embeddings scored in chunks of ``chunk``).

    Args:
        model, tokenizer: a bi-encoder.
        queries, docs: {id: text}.
        options: max_length, batch_size, bf16, progress (:class:`ScoringOptions`, default with a progress bar;
            ``overrides`` of its fields).
        depth: documents kept per query.
        chunk: documents per similarity matrix product.

    Returns:
        [(qid, doc_id, score, rank)] sorted by query then rank (ties by doc id).
    """
    opts = ScoringOptions.of(options or ScoringOptions(progress=True), **overrides)
    spec = spec_of(model)
    if not spec.kind_info.embeds:
        raise RankerError(f"first_stage: dense needs a bi-encoder, got kind {spec.kind!r}")
    qids, dids = list(queries), list(docs)
    eq = embed_texts(model, tokenizer, [queries[q] for q in qids], opts, stream="query")
    ed = embed_texts(model, tokenizer, [docs[d] for d in dids], opts, stream="passage")
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


def score_pairs(model, tokenizer, queries, passages, options: ScoringOptions | None = None, *, before_forward=None,
                **overrides) -> np.ndarray:
    """Relevance F of every (query, passage) pair, in input order (queries truncated by :func:`truncate_queries`).

    Pairs are batched by token length (fewer pad tokens, same scores: padding is masked). ``bf16`` runs the
    forward under bfloat16 autocast (``"auto"``: where the device runs bf16 natively, see
    :mod:`irneurons.numerics`); the head stays fp32 (:func:`irneurons.numerics.keep_head_in_full_precision`).
    Hooks registered on the model (e.g. pruning masks) apply as usual.

    Args:
        model, tokenizer: a ranker of any kind (:func:`irneurons.rankers.loading.load_ranker`).
        queries, passages: N texts each.
        options: :class:`ScoringOptions` (default: max_length 128, batch_size 64, fp32, target auto);
            ``overrides`` of its fields (``max_length=256``) are applied on top.
        before_forward: called with each batch's encoding first (part-restricted pruning uses it).

    Returns:
        [N] float64 scores.

    Examples:
        >>> scores = score_pairs(model, tokenizer, ["heat transfer"] * 2, passages)  # doctest: +SKIP
        >>> options = ScoringOptions(max_length=256, bf16="auto")
        >>> scores = score_pairs(model, tokenizer, qs, ps, options)  # doctest: +SKIP
    """
    opts = ScoringOptions.of(options, **overrides)
    queries, passages = _texts(queries, passages)
    if not queries:
        return np.empty(0)
    return spec_of(model).kind_info.score(model, tokenizer, queries, passages, opts, before_forward)


def encode_batches(tokenizer, queries, passages, options: ScoringOptions | None = None, **overrides):
    """[(indices, encoding)]: the pairs sorted by token length (stable) and cut into batches of
    ``options.batch_size``, each tokenized as :func:`irneurons.rankers.encoding.encode` does (queries cut to their
    budget by :func:`truncate_queries`, then passages truncated to ``options.max_length``; padding to the batch's
    longest pair). Logs how many distinct queries were cut."""
    opts = ScoringOptions.of(options, **overrides)
    max_length, share = opts.max_length, opts.max_query_share
    queries, passages = list(queries), list(passages)
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passages; give one passage per query")
    queries, n_cut = truncate_queries(tokenizer, queries, max_length, share)
    if n_cut:
        log.info("%d distinct queries truncated to %d tokens (model.max_query_share=%s)", n_cut,
                 query_budget(tokenizer, max_length, share), query_share(tokenizer, share))
    lengths = [len(x) for x in
               tokenizer(queries, passages, truncation="only_second", max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    return [(idx, encode_pair_texts(tokenizer, [queries[i] for i in idx], [passages[i] for i in idx], max_length))
            for idx in (order[i : i + opts.batch_size] for i in range(0, len(order), opts.batch_size))]


def score_batches(model, batches, n_pairs: int, options: ScoringOptions | None = None, *, before_forward=None,
                  **overrides) -> np.ndarray:
    """Relevance F of :func:`encode_batches`' batches, scattered back to input order (``n_pairs`` scores, float64);
    ``options``: target, bf16, progress."""
    from tqdm.auto import tqdm

    opts = ScoringOptions.of(options, **overrides)
    scores = np.empty(n_pairs, dtype=np.float64)
    device = next(model.parameters()).device
    bf16 = resolve_bf16(opts.bf16, device)
    with torch.inference_mode():
        for idx, enc in tqdm(batches, desc="scoring", unit="batch", disable=not opts.progress, mininterval=5):
            enc = enc.to(device)
            if before_forward is not None:
                before_forward(enc)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits
            scores[idx] = relevance(logits.float(), opts.target).double().cpu().numpy()
    return scores
