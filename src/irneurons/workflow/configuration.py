"""Config validation with one-line errors that name the offending key."""

from __future__ import annotations

from irneurons.errors import ConfigError
import yaml


def schema_errors(config: dict, schema_path) -> list[str]:
    """All schema violations as one-liners ``key.path: message``, most relevant first."""
    import jsonschema

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=jsonschema.exceptions.relevance)
    out = []
    for err in errors:
        path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        msg = err.message if len(err.message) < 200 else err.message[:200] + "…"
        out.append(f"{path}: {msg}")
    return out


def check_config(config: dict, schema_path) -> None:
    """Raise ConfigError naming the first violated key (and how many more there are)."""
    errors = schema_errors(config, schema_path)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"config error at {errors[0]}{more}")
