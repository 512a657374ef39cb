"""What the Snakemake workflow needs beside its rules: config checks, provenance and code versions, the planning of
the job grid, and the scripts' shared job preamble. Torch-free at import: the Snakefile imports it at parse time.
"""

from irneurons._lazy import lazy_exports

_EXPORTS = {
    "check_config": "workflow.configuration",
    "code_version": "workflow.provenance",
    "stamp": "workflow.provenance",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
