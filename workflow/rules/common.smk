# Helpers shared by the rule files (config validation, output naming, settings per
# wildcard). Rules hold no logic; what they need to compute lives here.

import os
import sys

# The library lives in src/; jobs (local, conda or cluster) find it through PYTHONPATH.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.getenv("PYTHONPATH")) if p))

from landscapes.config import validate_config
from landscapes.partial import ratio_label


# Fail before the DAG is built: a bad key names itself and nothing runs.
validate_config(config)

PRESET = config["preset"]
RES = f"results/{PRESET}"
LOGS = f"logs/{PRESET}"
BENCH = f"benchmarks/{PRESET}"
TABLE_EXTS = ("csv", "md", "tex")


def table(name):
    """The three files of a results table: results/<preset>/tables/<name>.{csv,md,tex}."""
    return [f"{RES}/tables/{name}.{ext}" for ext in TABLE_EXTS]


def table_outputs(**names):
    """Named outputs of a table-writing job: <key>_<ext> for every extension."""
    return {f"{key}_{ext}": f"{RES}/tables/{name}.{ext}" for key, name in names.items() for ext in TABLE_EXTS}


def figure(name):
    return f"{RES}/figures/{name}.png"


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
    return ["vgg16", "vgg16_ours"]


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
    return table("table_4_1") + [figure("figure_4_2a")]


# ---- Chapter 4b (detection from compressive measurements) -----------------------------


def ch4_detection_outputs():
    return []


# ---- Chapter 2 (sparse coding) ---------------------------------------------------------


def ch2_outputs():
    return []


# ---- Chapter 3 (scale-invariant flatness) ----------------------------------------------


def ch3_outputs():
    return []


# ---- Targets ---------------------------------------------------------------------------


def ch4_outputs():
    return ch4_partial_outputs() + ch4_detection_outputs()


def extension_outputs():
    return []
