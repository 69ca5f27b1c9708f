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

from flatscape.pipeline.config import STAGED_SOURCES, datasets_in_use, validate_config
from flatscape.pipeline.naming import CLAIM_TABLES, SCATTER_FIGURES, fraction_label


# Fail before the DAG is built: a bad key names itself and nothing runs.
validate_config(config)

PRESET = config["preset"]
RES = f"results/{PRESET}"
LOGS = f"logs/{PRESET}"
BENCH = f"benchmarks/{PRESET}"
# threads of each Chapter 4 training/evaluation job (1 in the quick preset: two such jobs side by side)
JOB_THREADS = config["job_threads"]
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


def staged_file(name):
    """The manifest `stage_dataset` writes once data set ``name`` is fetched and verified."""
    return f"{RES}/datasets/staged/{name}.json"


def needs_staging(name):
    return config["data"]["sources"][name]["source"] in STAGED_SOURCES


def staged_input(name):
    """{"staged": manifest} for a data set that is staged, else {}.

    ancient(): restaging (e.g. `--forcerun stage_dataset`) rewrites the manifest but must
    not make everything computed from the data out of date.
    """
    return {"staged": ancient(staged_file(name))} if needs_staging(name) else {}


def dataset_inputs(wildcards):
    return staged_input(wildcards.dataset)


def staged_outputs():
    """The `data` target: a manifest per data set the active preset reads that needs fetching or checking."""
    return [staged_file(name) for name in datasets_in_use(config) if needs_staging(name)]


def dataset_spec(wildcards):
    sources = config["data"]["sources"]
    if wildcards.dataset not in sources:
        raise ValueError(
            f"data set {wildcards.dataset!r} is used but data.sources.{wildcards.dataset} is not configured"
        )
    spec = dict(sources[wildcards.dataset])
    spec["root"] = config["data"]["root"]
    return spec


# ---- Targets ---------------------------------------------------------------------------


def ch4_outputs():
    return ch4_partial_outputs() + ch4_detection_outputs()


def claims_inputs():
    """The tables the claims summary reads (flatscape.pipeline.naming.CLAIM_TABLES) that this preset builds."""
    wanted = set(CLAIM_TABLES)
    return sorted({str(p) for p in ch2_outputs() + ch3_outputs() + ch4_outputs() if os.path.basename(str(p)) in wanted})


def extension_outputs():
    return ch2_extension_outputs()
