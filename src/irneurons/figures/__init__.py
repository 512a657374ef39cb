"""Figures and their tables, drawn only from tables on disk, and the neuron explorer (a static page).
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "layer_distribution_table": "figures.tables",
    "build_explorer": "figures.explorer",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
