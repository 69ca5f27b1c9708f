# Helpers shared by the rule files (config validation, output naming, settings per
# wildcard). Rules hold no logic; what they need to compute lives here.

import os
import sys

# The library lives in src/; jobs (local, conda or cluster) find it through PYTHONPATH.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.getenv("PYTHONPATH")) if p))
# OpenMP threads that spin while they wait are ruinous when jobs share cores: measured
# here, a YOLO epoch with 2 spinning torch threads took 8x as long as with passive ones.
# Every job inherits this; set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from landscapes.pipeline.config import validate_config
from landscapes.pipeline.naming import SCATTER_FIGURES, fraction_label, ratio_label


# Fail before the DAG is built: a bad key names itself and nothing runs.
validate_config(config)

PRESET = config["preset"]
RES = f"results/{PRESET}"
LOGS = f"logs/{PRESET}"
BENCH = f"benchmarks/{PRESET}"
TABLE_EXTS = ("csv", "md", "tex")


# ---- Output naming and the HTML report (`snakemake --report`) --------------------------
# Every table and figure is flagged for the report where it is named, so a new rule
# that names its outputs with these helpers is in the report without further edits.
# Its caption is workflow/report/captions/<name>.rst (figure_4_2a falls back to
# figure_4_2.rst, then to _generic.rst); its category is its chapter (chapters.yaml).

import re

import yaml

REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")
with open(os.path.join(REPORT_DIR, "chapters.yaml")) as _chapters:
    REPORT_CHAPTERS = yaml.safe_load(_chapters)
_RESULT_NAME = re.compile(
    r"^(?P<kind>table|figure)_(?P<chapter>\d+)(?:_(?P<number>\d+)(?P<part>[a-z]?))?(?:_(?P<extra>\w+))?$"
)


def result_report_info(name):
    """(caption path, category, thesis label) of the result called ``name``.

    ``table_4_1`` -> Table 4.1 in Chapter 4 with captions/table_4_1.rst;
    ``figure_4_2a`` -> Figure 4.2a, caption figure_4_2a.rst or else figure_4_2.rst;
    ``table_4_4_track_vote`` -> an extension beside Table 4.4 (its own caption or the
    generic one). Caption paths are absolute: Snakemake resolves relative ones against
    the file of the rule that uses them, which differs between callers.
    """
    match = _RESULT_NAME.match(name)
    chapters = REPORT_CHAPTERS["chapters"]
    if not match or int(match["chapter"]) not in chapters:
        return _caption([name]), REPORT_CHAPTERS["other"], "extension"
    category = chapters[int(match["chapter"])]
    if match["number"] is None:
        return _caption([name]), category, "extension"
    label = f"{match['kind'].capitalize()} {match['chapter']}.{match['number']}{match['part']}"
    if match["extra"]:
        return _caption([name]), category, f"{label} ({match['extra'].replace('_', ' ')})"
    whole = f"{match['kind']}_{match['chapter']}_{match['number']}"
    return _caption([name, whole]), category, label


def _caption(names):
    for name in names:
        path = os.path.join(REPORT_DIR, "captions", f"{name}.rst")
        if os.path.exists(path):
            return path
    return os.path.join(REPORT_DIR, "captions", "_generic.rst")


def _for_report(path, name, kind):
    caption, category, label = result_report_info(name)
    return report(path, caption=caption, category=category, subcategory=kind, labels={"thesis": label, "name": name})


def table(name):
    """The three files of a results table: results/<preset>/tables/<name>.{csv,md,tex}.

    The CSV is flagged for the report (the .md/.tex copies would only repeat it).
    """
    return [
        _for_report(f"{RES}/tables/{name}.{ext}", name, "Tables") if ext == "csv" else f"{RES}/tables/{name}.{ext}"
        for ext in TABLE_EXTS
    ]


def table_outputs(**names):
    """Named outputs of a table-writing job: <key>_<ext> for every extension (the CSV flagged for the report)."""
    return {f"{key}_{ext}": path for key, name in names.items() for ext, path in zip(TABLE_EXTS, table(name))}


def figure(name):
    """results/<preset>/figures/<name>.png, flagged for the report."""
    return _for_report(f"{RES}/figures/{name}.png", name, "Figures")


def by_attempt(base):
    """A resource that grows with each retry: ``base`` on attempt 1, ``base * attempt`` after.

    With retries on (both profiles set them) a job killed for running out of memory
    or wall time is resubmitted asking for twice, then three times, as much:
    ``mem_mb=by_attempt(8000), runtime=by_attempt(600)``.
    """
    return lambda wildcards, attempt: base * attempt


def dataset_file(name):
    return f"{RES}/datasets/{name}.npz"


def dataset_spec(wildcards):
    sources = config["data"]["sources"]
    if wildcards.dataset not in sources:
        raise ValueError(
            f"data set {wildcards.dataset!r} is used but data.sources.{wildcards.dataset} is not configured"
        )
    spec = dict(sources[wildcards.dataset])
    spec.setdefault("path", None)
    spec["root"] = config["data"]["root"]
    return spec


# ---- Chapter 4a (partial observation) -------------------------------------------------

PARTIAL = config["ch4"]["partial"]


def partial_ratio_labels():
    labels = [ratio_label(r) for r in PARTIAL["test_ratios"]]
    return labels + (["Random"] if PARTIAL["random_column"] else [])


def partial_ratio_value(label):
    return "random" if label == "Random" else float(label)


def partial_methods():
    recon = ["recon_vgg16", "recon_vgg16_ours"] if PARTIAL["autoencoder"]["enabled"] else []
    return ["vgg16", "vgg16_ours"] + recon


def partial_autoencoders():
    return expand(f"{RES}/ch4/partial/autoencoders/ratio{{ratio}}.pt", ratio=[ratio_label(r) for r in PARTIAL["autoencoder"]["ratios"]])


def partial_eval_inputs(wildcards):
    """A Recon method is its classifier behind the autoencoders; the others are the classifier alone."""
    classifier = wildcards.method.removeprefix("recon_")
    inputs = {
        "model": f"{RES}/ch4/partial/models/{classifier}.pt",
        "test": f"{RES}/ch4/partial/test/ratio{wildcards.ratio}.npz",
    }
    if wildcards.method.startswith("recon_"):
        inputs["autoencoders"] = partial_autoencoders()
    return inputs


def partial_autoencoder_params(wildcards):
    ae = PARTIAL["autoencoder"]
    return {"ratio": float(wildcards.ratio), "width": ae["width"], "train": ae["train"], "seed": config["seed"], "device": config["device"]}


def partial_timing_tests():
    labels = [ratio_label(r) for r in PARTIAL["test_ratios"]]
    return {label: f"{RES}/ch4/partial/test/ratio{label}.npz" for label in labels}


def partial_train_params(wildcards):
    """Settings of one classifier; the ones VGG-16 ignores are left out so they don't trigger reruns."""
    return {
        "model": PARTIAL["model"],
        "train": PARTIAL["train"],
        "train_ratios": PARTIAL["train_ratios"] if wildcards.method == "vgg16_ours" else [],
        "seed": config["seed"],
        "device": config["device"],
    }


def ch4_partial_outputs():
    if not PARTIAL["enabled"]:
        return []
    outputs = table("table_4_1") + [figure("figure_4_2a")]
    if PARTIAL["autoencoder"]["enabled"]:
        outputs += table("figure_4_2b_timings") + [figure("figure_4_2b")]
    return outputs


# ---- Chapter 4b (detection from compressive measurements) -----------------------------

import json



DETECTION = config["ch4"]["detection"]
DET_DIR = f"{RES}/ch4/detection"
# Fractions of Figure 4.5's panels (the thesis shows 100/50/25/12.5%), where configured.
FIGURE_4_5_FRACTIONS = (1.0, 0.5, 0.25, 0.125)



def ultralytics_dir(job):
    """Each job's own YOLO_CONFIG_DIR (settings and fonts), so parallel jobs never share a settings file."""
    return os.path.join(DETECTION["ultralytics_dir"] or f"{RES}/.ultralytics", job)


def detection_stages():
    """base (day 1 -> day 2), plus finetune (multi-target videos) when those videos exist."""
    scenes = DETECTION["scenes"]
    if scenes["source"] == "folder":
        manifest = os.path.join(scenes["path"], "manifest.json")
        splits = set(json.load(open(manifest))["videos"].values()) if os.path.exists(manifest) else set()
        has_multi = {"finetune", "multi_test"} <= splits
    else:
        has_multi = scenes["multi_target_frames"] > 0
    return ["base", "finetune"] if has_multi else ["base"]


def detection_train_splits(stage):
    return ["train"] if stage == "base" else ["finetune"]


def detection_test_split(stage):
    return "test" if stage == "base" else "multi_test"


def detection_fraction_labels():
    return [fraction_label(f) for f in DETECTION["pce"]["fractions"]]


def detection_evals(stage):
    return [f"{DET_DIR}/eval/{stage}/frac{label}.csv" for label in detection_fraction_labels()]


def figure_4_5_fractions():
    configured = {fraction_label(f) for f in DETECTION["pce"]["fractions"]}
    return [fraction_label(f) for f in FIGURE_4_5_FRACTIONS if fraction_label(f) in configured] or detection_fraction_labels()[:1]


def detector_init(wildcards):
    """The fine-tuning stage starts from the base detector; the base stage from the configured model."""
    return [] if wildcards.stage == "base" else [f"{DET_DIR}/models/yolo_base.pt"]


def classifier_init(wildcards):
    return [] if wildcards.stage == "base" else [f"{DET_DIR}/models/resnet18_base.pt"]


def detector_params(wildcards):
    d = DETECTION["detector"]
    return {
        "model": d["model"] if wildcards.stage == "base" else None,
        "epochs": d["epochs"] if wildcards.stage == "base" else d["finetune_epochs"],
        "imgsz": d["imgsz"],
        "batch": d["batch"],
        "optimiser": d["optimiser"],
        "ultralytics_args": d["ultralytics_args"],
        "seed": config["seed"],
        "device": config["device"],
    }


def classifier_params(wildcards):
    c, p, d = DETECTION["classifier"], DETECTION["pce"], DETECTION["detector"]
    return {
        "splits": detection_train_splits(wildcards.stage),
        "crops": {
            "fractions": p["train_fractions"],
            "frames_per_code": p["frames_per_code"],
            "exposure": p["exposure"],
            "raw_stride": d["raw_stride"],
            "val_fraction": d["val_fraction"],
            "crop_size": c["crop_size"],
            "context": c["context"],
            "jitter": c["jitter"],
        },
        "train": {
            "epochs": c["epochs"] if wildcards.stage == "base" else c["finetune_epochs"],
            "batch_size": c["batch_size"],
            "optimiser": c["optimiser"],
        },
        "weights": c["weights"],
        "seed": config["seed"],
        "device": config["device"],
    }


def detection_eval_params(wildcards):
    p, e = DETECTION["pce"], DETECTION["evaluation"]
    return {
        "split": detection_test_split(wildcards.stage),
        "fraction": float(wildcards.fraction),
        "frames_per_code": p["frames_per_code"],
        "exposure": p["exposure"],
        "imgsz": DETECTION["detector"]["imgsz"],
        "conf": e["conf"],
        "iou": e["iou"],
        "match_iou": e["match_iou"],
        "tracker": e["tracker"],
        "seed": config["seed"],
        "device": config["device"],
    }


def partial_detection_methods():
    return ["full", "ours"]


def partial_detector_params(wildcards):
    """Settings of one Fig. 4.2c detector; `full` has no training ratios, so changing them retrains only `ours`."""
    p = DETECTION["partial"]
    return {
        **p["detector"],
        "train_ratios": p["train_ratios"] if wildcards.method == "ours" else [],
        "seed": config["seed"],
        "device": config["device"],
    }


def partial_eval_params(wildcards):
    p = DETECTION["partial"]
    return {
        "test_ratios": p["test_ratios"],
        "imgsz": p["detector"]["imgsz"],
        "batch": p["detector"]["batch"],
        "seed": config["seed"],
        "device": config["device"],
    }


def ch4_detection_outputs():
    if not DETECTION["enabled"]:
        return []
    outputs = table("table_4_2") + table("table_4_3") + table("table_4_4") + table("table_4_4_track_vote")
    outputs += [figure("figure_4_3"), figure("figure_4_4"), figure("figure_4_5")]
    if "finetune" in detection_stages():
        outputs += table("table_4_multi_target")
    if DETECTION["partial"]["enabled"]:
        outputs += [figure("figure_4_2c")] + table("table_4_2c_map50")
    return outputs


# ---- Chapter 2 (sparse coding) ---------------------------------------------------------


CH2 = config["ch2"]


def ch2_params():
    """The Chapter 2 settings as landscapes.ch2.sparse_coding.Ch2Settings takes them."""
    return {key: value for key, value in CH2.items() if key != "enabled"}


def ch2_outputs():
    if not CH2["enabled"]:
        return []
    return table("table_2_1") + table("table_2_2") + [figure("figure_2_1"), figure("figure_2_2")]


def ch2_extension_outputs():
    if not CH2["enabled"]:
        return []
    names = ["table_2_support_recovery", "table_2_1_bias_readings", "table_2_1_bias_summary", "table_2_1_closest_reading", "table_2_coherence"]
    return [path for name in names for path in table(name)]


# ---- Chapter 3 (scale-invariant flatness) ----------------------------------------------


CH3 = config["ch3"]


def ch3_invariance_params():
    return dict(CH3["invariance"], device=config["device"])


def ch3_outputs():
    if not CH3["enabled"]:
        return []
    return (
        table("table_3_1")
        + table("table_3_2")
        + table("table_3_3")
        + table("table_3_euclidean_vs_riemannian")
        + [figure("figure_3_1")]
        + ch3_minima_outputs()
    )


# Sec. 3.5: one training run per (row, batch, seed), then one measurement of it.
MINIMA = CH3["minima"]
MINIMA_DIR = f"{RES}/ch3/minima"
MINIMA_ROWS = {f"{r['dataset']}-{r['network']}": r for r in MINIMA["rows"]}


def minima_runs(kind):
    """Every run's file of one kind: model (.pt), metrics (.json) or flatness (_flatness.json)."""
    suffix = {"model": ".pt", "metrics": ".json", "flatness": "_flatness.json"}[kind]
    return [
        f"{MINIMA_DIR}/{row}/{batch}_seed{seed}{suffix}"
        for row, spec in MINIMA_ROWS.items()
        for batch in ("small", "large")
        for seed in range(spec["seeds"])
    ]


def minima_row_dataset(wildcards):
    return dataset_file(MINIMA_ROWS[wildcards.row]["dataset"])


def minima_train_params(wildcards):
    row = MINIMA_ROWS[wildcards.row]
    return {
        "network": row["network"],
        "bias": row["bias"],
        "train_size": row["train_size"],
        **row[wildcards.batch],
        "stop_loss": MINIMA["stop_loss"],
        "seed": config["seed"] + int(wildcards.seed),
        "checkpoint_every": MINIMA["checkpoint_every"],
        "device": config["device"],
    }


def minima_measure_params(wildcards):
    row = MINIMA_ROWS[wildcards.row]
    return {
        "samples": row["flatness_samples"],
        "eps": row["eps"],
        **MINIMA["flatness"],
        "rescale_log_range": MINIMA["rescale_log_range"],
        "seed": config["seed"] + int(wildcards.seed),
        "device": config["device"],
    }


def minima_scatter_figures():
    """Figures 3.3-3.6, one per configured data set (digits stand in for MNIST)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in MINIMA["rows"]))
    names = [SCATTER_FIGURES[d] for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError("ch3.minima.rows: digits and mnist would both be Figure 3.3; configure only one")
    return dict(zip(datasets, names))


def minima_line_plot_models():
    return [f"{MINIMA_DIR}/{row}/{batch}_seed0.pt" for row in MINIMA_ROWS for batch in ("small", "large")]


def minima_datasets():
    return {d: dataset_file(d) for d in dict.fromkeys(r["dataset"] for r in MINIMA["rows"])}


def ch3_minima_outputs():
    if not MINIMA["enabled"]:
        return []
    tables = ["table_3_4", "table_3_5", "table_3_6", "table_3_7", "table_3_7_runs",
              "table_3_kendall", "table_3_kendall_rescaled"]  # fmt: skip
    figures = ["figure_3_2"] + list(minima_scatter_figures().values())
    return [path for name in tables for path in table(name)] + [figure(name) for name in figures]


# ---- Targets ---------------------------------------------------------------------------


def ch4_outputs():
    return ch4_partial_outputs() + ch4_detection_outputs()


def extension_outputs():
    return ch2_extension_outputs()
