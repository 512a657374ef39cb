"""Every error irneurons raises on purpose, under one base :class:`IrneuronsError`.

Each message names the input at fault and what is valid, in one line: the CLI prints it as
``irneurons: error: <message>``, the workflow as ``irneurons config error: <message>``. Catch
:class:`IrneuronsError` to catch them all. Each class also derives from the builtin exception that fits it
(``ValueError`` for bad input), so callers that catch those keep working.
"""


class IrneuronsError(Exception):
    """Base of every irneurons error; its message is one line naming the culprit."""


class ConfigError(IrneuronsError, ValueError):
    """A config value violates the schema; the message names the key path."""


class DataError(IrneuronsError, ValueError):
    """Bad dataset reference or unusable data; the message names the dataset and the problem."""


class ModelError(IrneuronsError, ValueError):
    """Bad model reference (or a setting the model cannot take); the message names it."""


class RankerError(IrneuronsError, ValueError):
    """A kind / prompt / answer-token problem; the message names the setting."""


class UnsupportedArchitecture(IrneuronsError, ValueError):
    """A model type without an adapter; the message names it and the supported types."""


class UnitError(IrneuronsError, ValueError):
    """A unit id or unit set the model does not have (layer or index out of range, unknown unit type)."""


class InputError(IrneuronsError, ValueError):
    """An attribution or scoring input that cannot be used (e.g. an empty query or passage)."""


class CompletenessError(IrneuronsError, RuntimeError):
    """Too many pairs of a shard violate completeness (Σ conductance + residual ≠ F(x) − F(x'))."""


class NonFiniteAttributionError(IrneuronsError, FloatingPointError):
    """A NaN or infinity appeared in an attribution."""
