"""irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders).

The front door: :class:`NeuronConductance` (and the :class:`Attribution` it returns), :func:`load_ranker`,
:class:`UnitSet` and :func:`pruned`; every deliberate error is an :class:`IrneuronsError`. The names load lazily,
so ``import irneurons`` (the workflow's config check) stays free of torch.

Subpackages, each importing only from those before it: :mod:`irneurons.units` (architectures, hooks, unit sets),
:mod:`irneurons.rankers` (kinds, encoding, the relevance target F, loading, scoring), :mod:`irneurons.attribution`
(NIG), :mod:`irneurons.retrieval` (datasets, first stage, evaluation, fine-tuning), :mod:`irneurons.study`
(aggregation, selection, pruning, statistics), :mod:`irneurons.figures`, :mod:`irneurons.workflow`; beside them
:mod:`irneurons.errors`, :mod:`irneurons.numerics`, :mod:`irneurons.testing` and :mod:`irneurons.cli`.
"""

from irneurons._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "IrneuronsError": "errors",
    "UnitSet": "units.unitsets",
    "load_ranker": "rankers.loading",
    "NeuronConductance": "attribution.conductance",
    "Attribution": "attribution.conductance",
    "pruned": "study.pruning",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
