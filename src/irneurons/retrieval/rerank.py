"""Re-ranking first-stage candidates with the ranker, and fusing the two scores."""

from __future__ import annotations

from irneurons.rankers.options import ScoringOptions
from irneurons.rankers.scoring import score_pairs
from irneurons.retrieval.evaluation import zscore_per_query


def rerank_candidates(model, tokenizer, candidates, queries, docs, options: ScoringOptions | None = None, *,
                      fusion_weight: float = 0.5, **overrides):
    """Score every candidate with the ranker and fuse with the first stage.

    Args:
        model, tokenizer: the ranker (any kind).
        candidates: DataFrame with columns qid, doc_id, score (the first stage's), ...
        queries: DataFrame with columns qid, text.
        docs: DataFrame with columns doc_id, text.
        options: :class:`ScoringOptions` (default: with a progress bar; queries truncated by
            :func:`irneurons.rankers.encoding.truncate_queries`, ``max_query_share`` None = the tokenizer's policy);
            ``overrides`` of its fields on top.
        fusion_weight: w of the fusion below.

    Returns:
        The candidates with columns ``first_stage`` (its score), ``cross_encoder`` (F) and
        ``fusion`` = w·z(first_stage) + (1 − w)·z(cross_encoder), z a per-query z-score.
    """
    opts = ScoringOptions.of(options or ScoringOptions(progress=True), **overrides)
    qtext = dict(zip(queries["qid"], queries["text"]))
    dtext = dict(zip(docs["doc_id"], docs["text"]))
    out = candidates.rename(columns={"score": "first_stage"}).reset_index(drop=True)
    out["cross_encoder"] = score_pairs(model, tokenizer, [qtext[q] for q in out["qid"]],
                                       [dtext[d] for d in out["doc_id"]], opts)
    out["fusion"] = fusion_weight * zscore_per_query(out, "first_stage") + (1 - fusion_weight) * zscore_per_query(
        out, "cross_encoder"
    )
    return out
