"""irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders).

The front door: :class:`NeuronConductance` (and the :class:`Attribution` it returns), :func:`load_ranker`,
:func:`irneurons.prune.pruned`. They load lazily, so ``import irneurons`` (the workflow's config check) stays
free of torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "NeuronConductance": "conductance",
    "Attribution": "conductance",
    "load_ranker": "model",
    "UnitSet": "unitsets",
}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'irneurons' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
