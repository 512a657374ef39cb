"""Errors users see as one line: bad model references, targets and encoding settings."""


class ModelError(ValueError):
    """Bad model reference (or a setting the model cannot take); the message names it."""
