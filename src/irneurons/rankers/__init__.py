"""Ranker kinds (cross-encoder, monoT5, LLM re-ranker, bi-encoder) as one table ``KINDS``: how a model is loaded, how
a (query, passage) pair is encoded with its token parts, what the relevance target F is, and scoring for every
kind.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "KINDS": "rankers.kinds",
    "Kind": "rankers.kinds",
    "RankerSpec": "rankers.kinds",
    "spec_of": "rankers.kinds",
    "ScoringOptions": "rankers.options",
    "PART_NAMES": "rankers.parts",
    "token_parts": "rankers.parts",
    "baseline_ids": "rankers.parts",
    "truncate_queries": "rankers.encoding",
    "encode": "rankers.encoding",
    "Encoded": "rankers.pairs",
    "encode_pairs": "rankers.pairs",
    "resolve_target": "rankers.relevance",
    "load_ranker": "rankers.loading",
    "resolve_model_source": "rankers.loading",
    "score_pairs": "rankers.scoring",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
