# Helpers of ch4_partial.smk: settings per job (its params), outputs per target, input functions.

from flatscape.pipeline.naming import Ratio

PARTIAL = config["ch4"]["partial"]
PARTIAL_DIR = f"{RES}/ch4/partial"


def partial_fixed_ratios():
    """Table 4.1's fixed test ratios (1.0 ... 0.1 in the thesis)."""
    return [Ratio.parse(r) for r in PARTIAL["test_ratios"]]


def partial_test_ratios():
    """Table 4.1's columns: the fixed ratios, then Random (a ratio per image) when configured."""
    return partial_fixed_ratios() + ([Ratio.random()] if PARTIAL["random_column"] else [])


def partial_test_set(ratio):
    return f"{PARTIAL_DIR}/test/ratio{ratio.wildcard}.npz"


def partial_methods():
    recon = ["recon_vgg16", "recon_vgg16_ours"] if PARTIAL["autoencoder"]["enabled"] else []
    return ["vgg16", "vgg16_ours"] + recon


def partial_autoencoders():
    ratios = [Ratio.parse(r) for r in PARTIAL["autoencoder"]["ratios"]]
    return [f"{PARTIAL_DIR}/autoencoders/ratio{r.wildcard}.pt" for r in ratios]


def partial_eval_outputs():
    """A method's cells of Table 4.1, one per test ratio (the `method` wildcard left open)."""
    return [f"{PARTIAL_DIR}/eval/{{method}}/ratio{r.wildcard}.json" for r in partial_test_ratios()]


def partial_eval_inputs(wildcards):
    """A Recon method is its classifier behind the autoencoders; the others are the classifier alone."""
    classifier = wildcards.method.removeprefix("recon_")
    inputs = {"model": f"{PARTIAL_DIR}/models/{classifier}.pt", "tests": [partial_test_set(r) for r in partial_test_ratios()]}
    if wildcards.method.startswith("recon_"):
        inputs["autoencoders"] = partial_autoencoders()
    return inputs


def partial_train_params(wildcards):
    """ClassifierSettings; VGG-16 gets no training ratios, so changing them retrains only VGG-16-Ours."""
    ours = wildcards.method == "vgg16_ours"
    return {
        "model": PARTIAL["model"],
        "train": PARTIAL["train"],
        "train_ratios": [Ratio.parse(r) for r in PARTIAL["train_ratios"]] if ours else [],
        "seed": config["seed"],
        "device": config["device"],
    }


def partial_autoencoder_params(wildcards):
    """AutoencoderSettings of the autoencoder of one ratio."""
    ae = PARTIAL["autoencoder"]
    return {"ratio": Ratio.parse(wildcards.ratio), "width": ae["width"], "train": ae["train"], "seed": config["seed"],
            "device": config["device"]}


def partial_eval_params(wildcards):
    """EvalSettings of one row of Table 4.1 (the ratios in the order of the `tests` input and the outputs)."""
    return {"method": wildcards.method, "ratios": partial_test_ratios(), "batch_size": PARTIAL["eval_batch_size"],
            "device": config["device"]}


def ch4_partial_outputs():
    if not PARTIAL["enabled"]:
        return []
    outputs = table("table_4_1") + [figure("figure_4_2a")]
    if PARTIAL["autoencoder"]["enabled"]:
        outputs += table("figure_4_2b_timings") + [figure("figure_4_2b")]
    return outputs


# Figure 4.2c (its outputs are listed by ch4_detection_outputs, beside the other detectors).
PARTIAL_DETECTION = config["ch4"]["detection"]["partial"]
PARTIAL_DET_DIR = f"{RES}/ch4/detection/partial"


def partial_detection_methods():
    return ["full", "ours"]


def partial_detection_data_inputs(wildcards):
    """VOC 2007 is read from what the `data` target staged; synthetic scenes need no input."""
    return staged_input("voc2007") if PARTIAL_DETECTION["source"] == "voc2007" else {}


def partial_detection_data_params():
    """DetectionDataSettings."""
    keys = ("source", "num_train", "num_val", "image_size", "max_objects", "truck_length")
    return {**{k: PARTIAL_DETECTION[k] for k in keys}, "seed": config["seed"], "root": config["data"]["root"]}


def partial_detector_params(wildcards):
    """DetectorSettings; `full` has no training ratios, so changing them retrains only `ours`."""
    ours = wildcards.method == "ours"
    return {
        "detector": PARTIAL_DETECTION["detector"],
        "train_ratios": PARTIAL_DETECTION["train_ratios"] if ours else [],
        "seed": config["seed"],
        "device": config["device"],
    }


def partial_detector_eval_params(wildcards):
    """DetectorEvalSettings."""
    d = PARTIAL_DETECTION["detector"]
    return {"method": wildcards.method, "test_ratios": PARTIAL_DETECTION["test_ratios"], "imgsz": d["imgsz"],
            "batch": d["batch"], "seed": config["seed"], "device": config["device"]}
