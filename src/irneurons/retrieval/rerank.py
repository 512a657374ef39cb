"""Re-ranking first-stage candidates with the ranker, and fusing the two scores."""

from __future__ import annotations

from irneurons.rankers.scoring import score_pairs
from irneurons.retrieval.evaluation import zscore_per_query


def rerank_candidates(
    model, tokenizer, candidates, queries, docs, *, target="auto", max_length=128, batch_size=64, bf16=False,
    fusion_weight=0.5, progress=True, max_query_share=None,
):
    """Score every candidate with the cross-encoder and fuse with the first stage (queries truncated by
    :func:`truncate_queries`; ``max_query_share`` None = the tokenizer's policy).

    Returns the candidates with columns ``first_stage`` (its score), ``cross_encoder`` (F) and
    ``fusion`` = w·z(first_stage) + (1 − w)·z(cross_encoder), z a per-query z-score.
    """
    qtext = dict(zip(queries["qid"], queries["text"]))
    dtext = dict(zip(docs["doc_id"], docs["text"]))
    out = candidates.rename(columns={"score": "first_stage"}).reset_index(drop=True)
    out["cross_encoder"] = score_pairs(
        model, tokenizer, [qtext[q] for q in out["qid"]], [dtext[d] for d in out["doc_id"]], target=target,
        max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress, max_query_share=max_query_share,
    )
    out["fusion"] = fusion_weight * zscore_per_query(out, "first_stage") + (1 - fusion_weight) * zscore_per_query(
        out, "cross_encoder"
    )
    return out
