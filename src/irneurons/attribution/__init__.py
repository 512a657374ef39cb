"""Neuron Integrated Gradients (neuron conductance): the front door :class:`NeuronConductance`, the engine and its
quadrature rules, the forward-mode linear trick, accumulation per token part, completeness checks, attribution
shards, and input-level IG for token views.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "Quadrature": "attribution.quadrature",
    "check_completeness": "attribution.completeness",
    "Engine": "attribution.engine",
    "save_shard": "attribution.shards",
    "load_shard": "attribution.shards",
    "NeuronConductance": "attribution.conductance",
    "Attribution": "attribution.conductance",
    "NIGSettings": "attribution.conductance",
    "RESULT_DOC": "attribution.conductance",
    "encoded_ids": "attribution.conductance",
    "token_attributions": "attribution.tokens",
    "TokenIGSettings": "attribution.tokens",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
