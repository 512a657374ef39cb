"""The neuron study: aggregation of attribution shards, unit selection, pruning, stability, statistics, claims and the
comparison of two models.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "aggregate_shards": "study.aggregate",
    "select_units": "study.selection",
    "pruned": "study.pruning",
    "pruned_scores": "study.pruning",
    "stability_table": "study.stability",
    "paired_tests": "study.statistics",
    "holm": "study.statistics",
    "claims_table": "study.claims",
    "overlap": "study.comparison",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
