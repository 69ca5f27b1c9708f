# Helpers of ch3_measures.smk: its outputs, the settings of each run's job, input functions.

MEASURES_CFG = MINIMA["measures"]


def ch3_measures_outputs():
    if not MINIMA["enabled"] or not MEASURES_CFG["enabled"]:
        return []
    return table("table_3_measures") + table("table_3_measures_runs") + [figure("figure_3_measures")]


def minima_generalization_params(wildcards):
    """flatscape.ch3.ranking.GeneralizationSettings of one run, with the hyperparameters it was trained with."""
    row = MINIMA_ROWS[wildcards.row]
    batch = row[wildcards.batch]
    cfg = {k: v for k, v in MEASURES_CFG.items() if k != "enabled"}
    return cfg | {
        "samples": cfg["samples"] or row["flatness_samples"],
        "batch_size": MINIMA["flatness"]["batch_size"],
        "dtype": MINIMA["flatness"]["dtype"],
        "float64_below": MINIMA["flatness"]["float64_below"],
        "seed": config["seed"] + int(wildcards.seed),
        "device": config["device"],
        "hyperparameters": {
            "dataset": row["dataset"],
            "network": row["network"],
            "arm": row.get("arm"),
            "protocol": row.get("protocol", "ce_stop"),
            "batch_size": batch["batch_size"],
            "lr": batch["optimiser"]["lr"],
            "seed": config["seed"] + int(wildcards.seed),
        },
    }


def minima_measures_runs():
    return [path.replace("_flatness.json", "_measures.json") for path in minima_runs("flatness")]
