# Helpers of ch3.smk: settings per job (its params), outputs per target, input functions.

from flatscape.pipeline.config import minima_row_id, minima_row_stop

CH3 = config["ch3"]
INVARIANCE = CH3["invariance"]
MINIMA = CH3["minima"]
MINIMA_DIR = f"{RES}/ch3/minima"
MINIMA_ROWS = {minima_row_id(r): r for r in MINIMA["rows"]}
PATH = MINIMA["path"]


def ch3_outputs():
    if not CH3["enabled"]:
        return []
    if not INVARIANCE["enabled"]:
        return ch3_minima_outputs()
    tables = ["table_3_1", "table_3_2", "table_3_3", "table_3_euclidean_vs_riemannian"]
    return [path for name in tables for path in table(name)] + [figure("figure_3_1")] + ch3_minima_outputs()


def ch3_minima_outputs():
    if not MINIMA["enabled"]:
        return []
    tables = ["table_3_4", "table_3_5", "table_3_6", "table_3_7", "table_3_7_runs",
              "table_3_kendall", "table_3_kendall_rescaled"]  # fmt: skip
    figures = ["figure_3_2"] + list(minima_scatter_figures().values())
    if PATH["enabled"]:
        tables += ["table_3_path", "table_3_path_runs"]
        figures += ["figure_3_path"]
    return [path for name in tables for path in table(name)] + [figure(name) for name in figures] + ch3_measures_outputs()


def invariance_params(*keys):
    return {key: INVARIANCE[key] for key in keys} | {"device": config["device"]}


def minima_runs(kind):
    """Every run's file of one kind: model (.pt), metrics (.json) or flatness (_flatness.json)."""
    suffix = {"model": ".pt", "metrics": ".json", "flatness": "_flatness.json"}[kind]
    return [
        f"{MINIMA_DIR}/{row}/{batch}_seed{seed}{suffix}"
        for row, spec in MINIMA_ROWS.items()
        for batch in ("small", "large")
        for seed in range(spec["seeds"])
    ]


def minima_snapshot_dir(wildcards):
    """A run's snapshots along its training path (not an output: like the checkpoint, it must
    survive a killed job, whose rerun resumes and keeps the snapshots taken before)."""
    return f"{MINIMA_DIR}/{wildcards.row}/{wildcards.batch}_seed{wildcards.seed}_path"


def minima_path_runs():
    """Every measured snapshot: each run at each of ch3.minima.path.thresholds (as 1e-02, ...)."""
    return [
        f"{MINIMA_DIR}/{row}/{batch}_seed{seed}_path/flatness_ce{threshold:.0e}.json"
        for row, spec in MINIMA_ROWS.items()
        for batch in ("small", "large")
        for seed in range(spec["seeds"])
        for threshold in PATH["thresholds"]
    ]


def minima_row_dataset(wildcards):
    return dataset_file(MINIMA_ROWS[wildcards.row]["dataset"])


def minima_train_params(row_id, batch):
    """flatscape.ch3.settings.RunSettings of a row's runs at one batch size, all but the seed:
    run s trains from seed + s, s read from its output's name (minima_train_runs). A job's
    non-derived params are then the same whichever seeds it trains, so that changing
    ch3.minima.seeds_per_job reruns nothing (Snakemake compares them per output file)."""
    row = MINIMA_ROWS[row_id]
    return {
        "network": row["network"],
        "bias": row["bias"],
        "train_size": row["train_size"],
        **row[batch],
        "stop_loss": minima_row_stop(row, MINIMA["stop_loss"]),  # None: a fixed epoch budget
        "seed": config["seed"],
        "checkpoint_every": MINIMA["checkpoint_every"],
        "device": config["device"],
    }


def minima_train_runs(wildcards, output):
    """Each output network's seed index, checkpoint and snapshot folder, derived from its file name.

    Neither is an output: like the checkpoint, the snapshots must survive a killed job,
    whose rerun resumes and keeps the snapshots taken before. Taking ``output`` makes this a
    derived param, which Snakemake leaves out of its params rerun trigger."""
    models = [output.model] if isinstance(output.model, str) else list(output.model)
    runs = []
    for model in models:
        stem = model[: -len(".pt")]
        runs.append({"seed": int(stem.rsplit("_seed", 1)[1]), "checkpoint": f"{stem}.ckpt", "snapshots": f"{stem}_path"})
    return runs


def minima_train_groups():
    """(row, batch, seed indices) of each training job when ch3.minima.seeds_per_job > 1."""
    k = MINIMA["seeds_per_job"]
    if k == 1:
        return []  # rule train_minimum trains each seed
    return [
        (row, batch, list(range(first, min(first + k, spec["seeds"]))))
        for row, spec in MINIMA_ROWS.items()
        for batch in ("small", "large")
        for first in range(0, spec["seeds"], k)
    ]


def minima_measure_params(wildcards):
    """flatscape.ch3.settings.MeasureSettings of one run."""
    row = MINIMA_ROWS[wildcards.row]
    return {
        "samples": row["flatness_samples"],
        "eps": row["eps"],
        **MINIMA["flatness"],
        "rescale_log_range": MINIMA["rescale_log_range"],
        "seed": config["seed"] + int(wildcards.seed),
        "device": config["device"],
    }


def minima_path_measure_params(wildcards):
    """flatscape.ch3.settings.PathMeasureSettings of one run's snapshot."""
    row = MINIMA_ROWS[wildcards.row]
    return {
        "threshold": float(wildcards.threshold),
        "samples": row["flatness_samples"],
        "eps": row["eps"],
        **MINIMA["flatness"],
        "seed": config["seed"] + int(wildcards.seed),
        "device": config["device"],
    }


def line_plot_rows():
    """Figure 3.2 draws the first configured row of each data set / network (another arm of
    the same pair, e.g. another protocol, is not drawn)."""
    first = {}
    for r in MINIMA["rows"]:
        first.setdefault((r["dataset"], r["network"]), r)
    return list(first.values())


def line_plot_params():
    """flatscape.ch3.settings.LinePlotSettings."""
    rows = [
        {"dataset": r["dataset"], "network": r["network"], "arm": r["arm"], "flatness_samples": r["flatness_samples"],
         "small_batch": r["small"]["batch_size"], "large_batch": r["large"]["batch_size"]}
        for r in line_plot_rows()
    ]  # fmt: skip
    return {"rows": rows, **MINIMA["line_plot"], "seed": config["seed"], "device": config["device"]}


def minima_scatter_figures():
    """Figures 3.3-3.6, one per configured data set (digits stand in for MNIST)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in MINIMA["rows"]))
    names = [SCATTER_FIGURES[d] for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError("ch3.minima.rows: digits and mnist would both be Figure 3.3; configure only one")
    return dict(zip(datasets, names))


def minima_line_plot_models():
    return [f"{MINIMA_DIR}/{minima_row_id(r)}/{batch}_seed0.pt" for r in line_plot_rows() for batch in ("small", "large")]


def minima_datasets():
    return {d: dataset_file(d) for d in dict.fromkeys(r["dataset"] for r in MINIMA["rows"])}
