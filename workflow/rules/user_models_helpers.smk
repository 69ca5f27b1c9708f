# Helpers of user_models.smk: one measurement per entry of the config's user_models list.

USER_MODELS = {m["name"]: m for m in config["user_models"]}
USER_MODELS_DIR = f"{RES}/user_models"


def user_model_outputs():
    """The `all` target's share: nothing while the list is empty."""
    return [f"{USER_MODELS_DIR}/{name}.json" for name in USER_MODELS]


def _user_model(wildcards):
    if wildcards.name not in USER_MODELS:
        raise ValueError(f"{wildcards.name!r} is not in the config's user_models ({', '.join(USER_MODELS) or 'empty'})")
    return USER_MODELS[wildcards.name]


def _named_dataset(entry):
    return None if ":" in entry["data"] else entry["data"]


def user_model_inputs(wildcards):
    """The files the measurement reads, so that a new checkpoint or data file reruns it."""
    entry = _user_model(wildcards)
    files = {}
    if entry["weights"]:
        files["weights"] = entry["weights"]
    kind, _, path = entry["data"].partition(":")
    if kind in ("npz", "imagefolder") and path:
        files["data"] = path
    elif _named_dataset(entry):
        files["dataset"] = dataset_file(entry["data"])
    return files


def user_model_params(wildcards):
    """The fields of flatscape.flatness.FlatnessSettings: the entry, plus where the pipeline keeps data."""
    entry = dict(_user_model(wildcards))
    entry.pop("name")
    named = _named_dataset(entry)
    return entry | {
        "device": entry["device"] or config["device"],
        "data_source": None,
        "data_root": config["data"]["root"],
        "data_path": None,
        "data_artifact": dataset_file(named) if named else None,
    }


def user_model_report(path):
    """A user model's JSON in the report, under its own category."""
    return report(path, caption=_caption(["user_models"]), category="Your models", subcategory="Flatness",
                  labels={"model": "{name}"})
