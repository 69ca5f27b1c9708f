"""Configuration validation against the workflow's JSON schema.

The Snakefile calls :func:`validate_config` before building the DAG, so a bad key
fails at once with a message naming it (``ch4.partial.test_ratios[0]: 1.5 is
greater than the maximum of 1``) and no job starts.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from flatscape.pipeline.extras import require_pipeline

try:
    import jsonschema
    import yaml
    from referencing import Registry, Resource
except ImportError:
    # The Snakefile's first import of the package: without the [pipeline] extra, `snakemake`
    # stops on one line naming it (a broken install that has all three still raises).
    require_pipeline("the workflow's config check", ("jsonschema", "yaml", "referencing"))
    raise

from flatscape.pipeline.naming import STAGED_SOURCES  # noqa: F401 (the Snakefile reads it from here)
from flatscape.pipeline.naming import TRAIN_SIZES, UNGROUPABLE_NETWORKS, snapshot_levels

T = TypeVar("T")

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


def _retrieve(uri: str) -> Resource:
    return Resource.from_contents(_load_yaml(Path(uri.removeprefix("file://"))))


def schema_validator(schema_path: str | Path = SCHEMA) -> jsonschema.Draft202012Validator:
    schema_path = Path(schema_path).resolve()
    schema = _load_yaml(schema_path)
    schema["$id"] = schema_path.as_uri()
    return jsonschema.Draft202012Validator(schema, registry=Registry(retrieve=_retrieve))


def validate_config(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validate ``config`` (unchanged) or raise :class:`ConfigError` naming every bad key.

    The schema's checks come first; the cross-field checks below (what a JSON schema
    cannot say) run only on a config that passed them.
    """
    validator = schema_validator(schema_path)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        _fill_defaults(validator, config)
    if errors:
        lines = [f"  {_dotted(e.absolute_path)}: {_message(e)}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    problems = cross_field_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
    return config


# ---- Cross-field checks: one function per chapter, each returns its problems ----------


def cross_field_problems(config: dict) -> list[str]:
    return (_data_problems(config) + _ch2_problems(config["ch2"]) + _ch3_problems(config["ch3"])
            + _ch4_problems(config["ch4"]) + _user_model_problems(config["user_models"]))  # fmt: skip


def datasets_in_use(config: dict) -> list[str]:
    """The data sets the enabled experiments read, in first-use order (``voc2007`` for Figure 4.2c on VOC)."""
    used = []
    ch3, ch4 = config["ch3"], config["ch4"]
    if ch3["enabled"] and ch3["minima"]["enabled"]:
        used += [row["dataset"] for row in ch3["minima"]["rows"]]
    if ch4["partial"]["enabled"]:
        used.append(ch4["partial"]["dataset"])
    det = ch4["detection"]
    if det["enabled"] and det["partial"]["enabled"] and det["partial"]["source"] == "voc2007":
        used.append("voc2007")
    used += [m["data"] for m in config.get("user_models", []) if ":" not in m["data"]]  # imagefolder:/npz: are files
    return list(dict.fromkeys(used))


def _user_model_problems(models: list[dict]) -> list[str]:
    names = [m["name"] for m in models]
    problems = [f"user_models: name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for m in models:
        if (m["mean"] is None) != (m["std"] is None):
            problems.append(f"user_models.{m['name']}: mean and std go together")
    return problems


def _data_problems(config: dict) -> list[str]:
    sources = config["data"]["sources"]
    return [f"data.sources.{name} is missing: an enabled experiment reads data set {name!r}"
            for name in datasets_in_use(config) if name not in sources]  # fmt: skip


def _ch2_problems(ch2: dict) -> list[str]:
    problems = []
    if ch2["a"] >= ch2["b"]:
        problems.append(f"ch2.a ({ch2['a']}) must be below ch2.b ({ch2['b']}): the non-zeros are uniform on [a, b]")
    if ch2["figure_t_min"] >= ch2["figure_t_max"]:
        problems.append(f"ch2.figure_t_min ({ch2['figure_t_min']}) must be below ch2.figure_t_max ({ch2['figure_t_max']})")
    return problems


def minima_row_id(row: Mapping) -> str:
    """A Table 3.7 row's name in file paths: ``<dataset>-<network>`` or ``<dataset>-<network>-<arm>``."""
    base = f"{row['dataset']}-{row['network']}"
    return f"{base}-{row['arm']}" if row.get("arm") else base


def minima_row_stop(row: Mapping, stop_loss: float | None) -> float | None:
    """The CE stop level of a row's runs; None for a fixed-epoch row (``protocol: fixed_epochs``)."""
    if row.get("protocol", "ce_stop") == "fixed_epochs":
        return None
    return row["stop_loss"] if "stop_loss" in row else stop_loss


def _ch3_problems(ch3: dict) -> list[str]:
    problems, seen = [], set()
    minima = ch3["minima"]
    for row in minima["rows"]:
        key = minima_row_id(row)
        if key in seen:
            problems.append(f"ch3.minima.rows: each data set / network / arm may appear only once ({key} repeats; "
                            "set `arm` to tell rows apart)")  # fmt: skip
        seen.add(key)
        problems += _protocol_problems(row, key, minima["stop_loss"])
        if row["small"]["batch_size"] >= row["large"]["batch_size"]:
            problems.append(f"ch3.minima.rows ({key}): the small batch size must be below the large one")
        if row["train_size"] is not None and row["flatness_samples"] > row["train_size"]:
            problems.append(f"ch3.minima.rows ({key}): flatness_samples exceeds train_size")
        available = TRAIN_SIZES.get(row["dataset"])
        if available is not None and row["train_size"] is not None and row["train_size"] > available:
            problems.append(f"ch3.minima.rows ({key}): train_size {row['train_size']} exceeds the {available} training "
                            f"images of {row['dataset']}")  # fmt: skip
    if minima["path"]["enabled"]:
        problems += _path_problems(minima["path"]["thresholds"], _deepest_level(minima))
    return problems + _group_problems(minima)


def _group_problems(minima: Mapping) -> list[str]:
    """Several seeds per job train as one stacked model, which only networks without dropout
    and batch norm do exactly like alone (core.train_group)."""
    k = minima.get("seeds_per_job", 1)
    if k == 1:
        return []
    problems = []
    for row in minima["rows"]:
        layers = UNGROUPABLE_NETWORKS.get(row["network"], ())
        if layers:
            problems.append(f"ch3.minima.seeds_per_job ({k}): the {row['network']} networks of row {minima_row_id(row)} "
                            f"have {', '.join(layers)} layers, which a group cannot train exactly like one seed alone; "
                            "set ch3.minima.seeds_per_job: 1")  # fmt: skip
    return problems


def _protocol_problems(row: Mapping, key: str, stop_loss: float | None) -> list[str]:
    """A row ends its runs either by a CE stop or after a fixed epoch budget: exactly one of the two."""
    fixed = row.get("protocol", "ce_stop") == "fixed_epochs"
    if fixed and row.get("stop_loss") is not None:
        return [f"ch3.minima.rows ({key}): protocol fixed_epochs trains a fixed epoch budget with no CE stop, "
                f"but the row also sets stop_loss {row['stop_loss']!r}; drop one of the two"]  # fmt: skip
    if not fixed and minima_row_stop(row, stop_loss) is None:
        return [f"ch3.minima.rows ({key}): protocol ce_stop needs a CE stop level, but stop_loss is null; "
                "set one, or use protocol fixed_epochs"]  # fmt: skip
    return []


def _deepest_level(minima: Mapping) -> float:
    """The smallest CE any run saves a snapshot at (ch3.snapshots.levels): fixed-epoch runs go deepest."""
    return min(snapshot_levels(minima_row_stop(row, minima["stop_loss"]))[-1] for row in minima["rows"])


def _path_problems(thresholds: list[float], deepest: float) -> list[str]:
    """The measured thresholds must be levels that runs save snapshots at (ch3.snapshots.levels)."""
    where, problems = "ch3.minima.path.thresholds", []
    if any(a <= b for a, b in itertools.pairwise(thresholds)):
        problems.append(f"{where} {thresholds} must be strictly decreasing")
    for t in thresholds:
        if abs(math.log10(t) - round(math.log10(t))) > 1e-9 or t > 0.1 * (1 + 1e-9):
            problems.append(f"{where}: {t!r} is not one of the snapshot levels 1e-1, 1e-2, ... (a power of ten <= 0.1)")
        elif t < deepest * (1 - 1e-9):
            problems.append(f"{where}: {t!r} is below the deepest snapshot level of every row ({deepest!r}: "
                            "ch3.minima.stop_loss, or 1e-10 for a fixed_epochs row); no run saves a snapshot there")  # fmt: skip
    return problems


def _ch4_problems(ch4: dict) -> list[str]:
    problems = []
    pce, scenes = ch4["detection"]["pce"], ch4["detection"]["scenes"]
    if pce["exposure"] > pce["frames_per_code"]:
        problems.append(
            f"ch4.detection.pce.exposure ({pce['exposure']}) must not exceed "
            f"ch4.detection.pce.frames_per_code ({pce['frames_per_code']})"
        )
    if scenes["source"] == "folder" and not scenes["path"]:
        problems.append("ch4.detection.scenes.path must name the video folder when scenes.source is folder")
    return problems


def _fill_defaults(validator: jsonschema.Draft202012Validator, config: dict) -> None:
    """Set every key the config leaves out to the schema's ``default`` (in place).

    The schema is the one place defaults live: a job's settings class has none, so a
    key that is neither in the config nor defaulted here fails when the job builds it.
    """

    def visit(schema: dict, instance, resolver) -> None:
        if "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            visit(resolved.contents, instance, resolved.resolver)
            return
        if isinstance(instance, dict):
            for key, sub in schema.get("properties", {}).items():
                if key not in instance and "default" in sub:
                    instance[key] = copy.deepcopy(sub["default"])
                if key in instance:
                    visit(sub, instance[key], resolver)
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for item in instance:
                visit(schema["items"], item, resolver)

    visit(validator.schema, config, Registry(retrieve=_retrieve).resolver(base_uri=validator.schema["$id"]))


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "exclusiveMinimum":
        return f"{error.instance!r} must be greater than {error.validator_value}"
    return error.message


def load_config(path: str | Path, schema_path: str | Path = SCHEMA) -> dict:
    """Read and validate a preset file (for use outside Snakemake, e.g. tests and notebooks)."""
    return validate_config(_load_yaml(Path(path)), schema_path)


# ---- Settings: one frozen dataclass per job -------------------------------------------
# Defaults live in the schema only. A job's settings class declares its fields without
# defaults; the rule passes exactly the validated config values it uses (its `params`),
# and `settings` builds the object once, so a missing or extra key is a bug caught here.


def settings(cls: type[T], mapping: Mapping[str, Any]) -> T:
    """Build the frozen dataclass ``cls`` from ``mapping`` (nested dataclasses included).

    Lists become tuples, so the object is immutable all the way down. Raises
    :class:`ConfigError` naming every missing or unknown key.
    """
    return _build(cls, mapping, cls.__name__)


def _build(cls, mapping, where: str):
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(mapping).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    missing = [n for n in names if n not in mapping]
    unknown = sorted(set(mapping) - set(names))
    if missing or unknown:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise ConfigError(f"{where}: " + "; ".join(parts))
    return cls(**{n: _value(hints.get(n), mapping[n], f"{where}.{n}") for n in names})


def _value(hint, value, where: str):
    target = _dataclass_in(hint)
    if target is not None and isinstance(value, Mapping):
        return _build(target, value, where)
    if isinstance(value, list):
        inner = _dataclass_in(typing.get_args(hint)[0]) if typing.get_args(hint) else None
        return tuple(_build(inner, v, f"{where}[{i}]") if inner and isinstance(v, Mapping) else _freeze(v)
                     for i, v in enumerate(value))
    return _freeze(value)


def _dataclass_in(hint):
    """The dataclass named by ``hint`` (``X`` or ``X | None``), if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def as_plain(obj: Any) -> Any:
    """A settings object back as plain dicts and lists (for JSON records and fingerprints)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [as_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: as_plain(v) for k, v in obj.items()}
    return obj
