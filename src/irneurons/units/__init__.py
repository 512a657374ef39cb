"""Neuron units of every supported architecture: where each block's FFN neurons and attention heads sit (the adapter
table ``ARCHITECTURES``), hooks that record or override them, and unit sets.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "ARCHITECTURES": "units.architectures",
    "Architecture": "units.architectures",
    "check_model_type": "units.architectures",
    "UnitLayout": "units.hooks",
    "layout": "units.hooks",
    "UnitRecorder": "units.hooks",
    "UnitSet": "units.unitsets",
    "unit_id": "units.unitsets",
    "parse_unit_id": "units.unitsets",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
