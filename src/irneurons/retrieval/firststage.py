"""First stage: candidate lists to re-rank (ir_datasets scoreddocs when present, else BM25 with bm25s)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CANDIDATE_COLUMNS = ["qid", "doc_id", "rank", "score"]


def bm25_candidates(
    docs: pd.DataFrame,
    queries: pd.DataFrame,
    k: int,
    k1: float = 1.5,
    b: float = 0.75,
    stopwords: str | None = "en",
) -> pd.DataFrame:
    """Top-``k`` documents per query by BM25 (bm25s, Lucene variant, regex tokenizer, no stemming).

    score(q, d) = Σ_{t∈q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl)).
    Query terms absent from the corpus vocabulary are dropped; a query left with no term gets no candidates.
    Returns columns qid, doc_id, rank (1-based), score.
    """
    import bm25s

    corpus_tokens = bm25s.tokenize(docs["text"].tolist(), stopwords=stopwords, show_progress=False)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    vocab = corpus_tokens.vocab
    query_tokens = bm25s.tokenize(queries["text"].tolist(), stopwords=stopwords, return_ids=False, show_progress=False)
    k = min(k, len(docs))
    doc_ids = docs["doc_id"].to_numpy()
    rows = []
    for qid, tokens in zip(queries["qid"], query_tokens):
        known = [t for t in tokens if t in vocab]
        if not known:
            continue
        idx, scores = retriever.retrieve([known], k=k, show_progress=False)
        for rank, (i, s) in enumerate(zip(idx[0], scores[0]), start=1):
            if s > 0:
                rows.append((qid, doc_ids[i], rank, float(s)))
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def scoreddocs_candidates(dataset_id: str, qids, k: int) -> pd.DataFrame:
    """Top-``k`` of the ir_datasets ``scoreddocs`` of ``dataset_id`` (e.g. the official BM25 runs of TREC DL)."""
    import ir_datasets

    wanted = set(qids)
    by_query: dict[str, list[tuple[str, float]]] = {}
    for sd in ir_datasets.load(dataset_id).scoreddocs_iter():
        if sd.query_id in wanted:
            by_query.setdefault(sd.query_id, []).append((sd.doc_id, float(sd.score)))
    rows = []
    for qid, scored in by_query.items():
        scored.sort(key=lambda x: (-x[1], x[0]))
        rows += [(qid, d, r, s) for r, (d, s) in enumerate(scored[:k], start=1)]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def has_scoreddocs(dataset_id: str) -> bool:
    import ir_datasets

    return ir_datasets.load(dataset_id).has_scoreddocs()


def recall_at_depth(candidates: pd.DataFrame, qrels: pd.DataFrame) -> float:
    """Fraction of relevant (gain > 0) qrels, over the candidates' queries, that appear in the candidate lists."""
    rel = qrels[(qrels["gain"] > 0) & qrels["qid"].isin(set(candidates["qid"]))]
    if rel.empty:
        return float("nan")
    found = set(zip(candidates["qid"], candidates["doc_id"]))
    return float(np.mean([(q, d) in found for q, d in zip(rel["qid"], rel["doc_id"])]))


def dense_candidates(model, tokenizer, docs: pd.DataFrame, queries: pd.DataFrame, k: int, *, max_length: int = 128,
                     batch_size: int = 64, bf16="auto") -> pd.DataFrame:
    """Top-``k`` documents per query by a bi-encoder: exact search over the whole corpus
    (:func:`irneurons.rankers.scoring.dense_retrieve`). Returns columns qid, doc_id, rank (1-based), score."""
    from irneurons.rankers.scoring import dense_retrieve

    rows = dense_retrieve(model, tokenizer, dict(zip(queries["qid"], queries["text"])),
                          dict(zip(docs["doc_id"], docs["text"])), depth=k, max_length=max_length,
                          batch_size=batch_size, bf16=bf16)
    return pd.DataFrame(rows, columns=["qid", "doc_id", "score", "rank"])[CANDIDATE_COLUMNS]
