"""The IR side: datasets (ir_datasets ids and BEIR folders), the first stage (BM25 or dense), evaluation with
pytrec_eval, re-ranking and fine-tuning a cross-encoder.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "DatasetSpec": "retrieval.datasets",
    "load_collection": "retrieval.datasets",
    "bm25_candidates": "retrieval.firststage",
    "per_query_metrics": "retrieval.evaluation",
    "rerank_candidates": "retrieval.rerank",
    "FinetuneConfig": "retrieval.finetune",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
