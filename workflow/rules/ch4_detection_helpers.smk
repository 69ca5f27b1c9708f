# Helpers of ch4_detection.smk: settings per job (its params), outputs per target, input functions.

import json


DETECTION = config["ch4"]["detection"]
DET_DIR = f"{RES}/ch4/detection"
# Fractions of Figure 4.5's panels (the thesis shows 100/50/25/12.5%), where configured.
FIGURE_4_5_FRACTIONS = (1.0, 0.5, 0.25, 0.125)
# Figure 4.3 draws one fraction's exposure pattern; Figure 4.4 the thesis's three.
FIGURE_4_3_FRACTION = 0.25
FIGURE_4_4_FRACTIONS = (0.5, 0.25, 0.125)


def ultralytics_dir(job):
    """Each job's own YOLO_CONFIG_DIR (settings and fonts), so parallel jobs never share a settings file."""
    return os.path.join(DETECTION["ultralytics_dir"] or f"{RES}/.ultralytics", job)


def detection_stages():
    """base (day 1 -> day 2), plus finetune (multi-target videos) when those videos exist."""
    scenes = DETECTION["scenes"]
    if scenes["source"] == "folder":
        manifest = os.path.join(scenes["path"], "manifest.json")
        splits = set()
        if os.path.exists(manifest):
            with open(manifest) as fh:
                splits = set(json.load(fh)["videos"].values())
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


def pce_params(**extra):
    """The PCE coding every figure of Sec. 4.5 shares, with the figure's own fields."""
    p = DETECTION["pce"]
    return {**extra, "frames_per_code": p["frames_per_code"], "exposure": p["exposure"], "seed": config["seed"]}


def detector_data_params(wildcards):
    """flatscape.ch4.detection.data.DetectorData"""
    p, d = DETECTION["pce"], DETECTION["detector"]
    return {
        "splits": detection_train_splits(wildcards.stage),
        "train_fractions": p["train_fractions"],
        "frames_per_code": p["frames_per_code"],
        "exposure": p["exposure"],
        "raw_stride": d["raw_stride"],
        "val_fraction": d["val_fraction"],
        "seed": config["seed"],
    }


def detector_params(wildcards):
    """flatscape.ch4.detection.yolo.DetectorJob; the finetune stage starts from the base detector (its `init` input)."""
    d = DETECTION["detector"]
    base = wildcards.stage == "base"
    return {
        "yolo": {
            "model": d["model"] if base else detector_init(wildcards)[0],
            "imgsz": d["imgsz"],
            "epochs": d["epochs"] if base else d["finetune_epochs"],
            "batch": d["batch"],
            "optimiser": d["optimiser"],
            "ultralytics_args": d["ultralytics_args"],
        },
        "seed": config["seed"],
        "device": config["device"],
    }


def classifier_params(wildcards):
    """flatscape.ch4.detection.crops.ClassifierJob"""
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
    """flatscape.ch4.detection.tracking.EvaluationJob"""
    p, e, c = DETECTION["pce"], DETECTION["evaluation"], DETECTION["classifier"]
    return {
        "split": detection_test_split(wildcards.stage),
        "fractions": [float(label) for label in detection_fraction_labels()],
        "frames_per_code": p["frames_per_code"],
        "exposure": p["exposure"],
        "imgsz": DETECTION["detector"]["imgsz"],
        "conf": e["conf"],
        "iou": e["iou"],
        "match_iou": e["match_iou"],
        "tracker": e["tracker"],
        "crop_size": c["crop_size"],
        "context": c["context"],
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
