"""Configuration validation against the workflow's JSON schema.

The Snakefile calls :func:`validate_config` before building the DAG, so a bad key
fails at once with a message naming it (``ch4.partial.test_ratios[0]: 1.5 is
greater than the maximum of 1``) and no job starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema; the message lists every problem."""


def _load_yaml(path: Path) -> Any:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def schema_validator(schema_path: str | Path = SCHEMA) -> jsonschema.Draft202012Validator:
    schema_path = Path(schema_path).resolve()
    schema = _load_yaml(schema_path)
    schema["$id"] = schema_path.as_uri()

    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(_load_yaml(Path(uri.removeprefix("file://"))))

    registry = Registry(retrieve=retrieve)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_config(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validate ``config`` (unchanged) or raise :class:`ConfigError` naming every bad key."""
    errors = sorted(schema_validator(schema_path).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {_dotted(e.absolute_path)}: {_message(e)}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return config


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "exclusiveMinimum":
        return f"{error.instance!r} must be greater than {error.validator_value}"
    return error.message


def load_config(path: str | Path, schema_path: str | Path = SCHEMA) -> dict:
    """Read and validate a preset file (for use outside Snakemake, e.g. tests and notebooks)."""
    return validate_config(_load_yaml(Path(path)), schema_path)
