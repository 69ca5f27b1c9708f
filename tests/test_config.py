import pytest

from conftest import preset
from flatscape.pipeline.config import ConfigError, validate_config


@pytest.mark.parametrize("name", ["quick", "cpu", "paper", "mnist_faithful", "table37_protocols", "table37_protocols_gpu", "table37_datasize", "table37_scale_gpu"])
def test_every_preset_is_valid(name):
    validate_config(preset(name))


def test_unknown_key_is_rejected_by_name():
    cfg = preset("quick")
    cfg["ch4"]["partial"]["learning_rat"] = 0.1
    with pytest.raises(ConfigError, match=r"ch4\.partial: unknown key.*'learning_rat'"):
        validate_config(cfg)


def test_unknown_top_level_key_is_rejected():
    cfg = preset("quick")
    cfg["chapter9"] = {}
    with pytest.raises(ConfigError, match="chapter9"):
        validate_config(cfg)


@pytest.mark.parametrize("ratio", [1.5, 0.0, -0.2])
def test_ratio_outside_unit_interval_is_rejected(ratio):
    cfg = preset("quick")
    cfg["ch4"]["partial"]["test_ratios"][2] = ratio
    with pytest.raises(ConfigError, match=r"ch4\.partial\.test_ratios\[2\]"):
        validate_config(cfg)


def test_non_positive_batch_size_is_rejected():
    cfg = preset("quick")
    cfg["ch4"]["partial"]["train"]["batch_size"] = 0
    with pytest.raises(ConfigError, match=r"ch4\.partial\.train\.batch_size: 0 is less than the minimum of 1"):
        validate_config(cfg)


def test_wrong_type_is_rejected():
    cfg = preset("quick")
    cfg["seed"] = "zero"
    with pytest.raises(ConfigError, match="seed: 'zero' is not of type 'integer'"):
        validate_config(cfg)


def test_missing_key_is_rejected():
    cfg = preset("quick")
    del cfg["ch4"]["partial"]["eval_batch_size"]
    with pytest.raises(ConfigError, match="'eval_batch_size' is a required property"):
        validate_config(cfg)


def test_all_problems_are_reported_at_once():
    cfg = preset("quick")
    cfg["seed"] = -1
    cfg["device"] = "tpu"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "seed" in str(err.value) and "device" in str(err.value)


@pytest.mark.parametrize("stage, where", [({"fraction": 0.0}, "fraction"), ({"fraction": 0.1, "dtype": "float16"}, "dtype"), ({}, "fraction")])
def test_bad_warm_start_stage_is_rejected(stage, where):
    cfg = preset("quick")
    cfg["ch3"]["minima"]["flatness"]["warm_start"] = [{"fraction": 0.05}, stage]
    with pytest.raises(ConfigError, match=rf"ch3\.minima\.flatness\.warm_start\[1\].*{where}"):
        validate_config(cfg)


# ---- defaults live in the schema; job settings are built from it --------------------------


def test_left_out_keys_take_the_schema_defaults_which_match_the_library():
    from flatscape.core.train import Optimiser

    cfg = preset("quick")
    opt = cfg["ch3"]["minima"]["rows"][0]["large"]["optimiser"]
    for key in ("lr_decay", "step_size", "gamma"):
        opt.pop(key, None)
    del cfg["ch3"]["minima"]["flatness"]["warm_start"]
    validate_config(cfg)
    library = Optimiser(name=opt["name"], lr=opt["lr"], momentum=opt["momentum"], weight_decay=opt["weight_decay"])
    assert (opt["lr_decay"], opt["step_size"], opt["gamma"]) == (library.lr_decay, library.step_size, library.gamma)
    assert cfg["ch3"]["minima"]["flatness"]["warm_start"] == "auto"
    assert cfg["data"]["sources"]["digits"]["path"] is None


def test_cross_field_problems_are_all_named():
    cfg = preset("quick")
    cfg["ch4"]["detection"]["pce"]["exposure"] = cfg["ch4"]["detection"]["pce"]["frames_per_code"] + 1
    row = cfg["ch3"]["minima"]["rows"][0]
    row["small"]["batch_size"] = row["large"]["batch_size"]
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "exposure" in str(err.value) and "small batch size must be below the large one" in str(err.value)


def test_settings_builds_frozen_nested_objects_and_names_missing_and_unknown_keys():
    import dataclasses

    from flatscape.ch3.settings import RunSettings
    from flatscape.pipeline.config import settings

    cfg = validate_config(preset("quick"))
    row = cfg["ch3"]["minima"]["rows"][0]
    params = {"network": row["network"], "bias": row["bias"], "train_size": row["train_size"], **row["small"],
              "stop_loss": 1e-3, "seed": 0, "checkpoint_every": 5, "device": "cpu"}  # fmt: skip
    run = settings(RunSettings, params)
    assert run.optimiser.step_size == row["small"]["optimiser"]["step_size"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 1
    with pytest.raises(ConfigError, match=r"RunSettings: missing \['seed'\]; unknown \['sede'\]"):
        settings(RunSettings, {**{k: v for k, v in params.items() if k != "seed"}, "sede": 0})
    with pytest.raises(ConfigError, match=r"RunSettings\.optimiser: missing \['lr'\]"):
        settings(RunSettings, {**params, "optimiser": {k: v for k, v in row["small"]["optimiser"].items() if k != "lr"}})


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ([0.01, 0.1], r"path\.thresholds \[0\.01, 0\.1\] must be strictly decreasing"),
        ([0.1, 0.1], "must be strictly decreasing"),
        ([], r"path\.thresholds: \[\] should be non-empty"),
        ([0.1, 0.0], r"path\.thresholds\[1\]: 0\.0 must be greater than 0"),
        ([0.1, -0.01], r"path\.thresholds\[1\]: -0\.01 must be greater than 0"),
        ([0.05], "0.05 is not one of the snapshot levels"),
        ([1.0], "1.0 is not one of the snapshot levels"),
        ([0.1, 1e-4], r"0\.0001 is below the deepest snapshot level of every row \(0\.001"),
    ],
)
def test_bad_training_path_thresholds_are_rejected(thresholds, message):
    cfg = preset("quick")  # stop_loss 1e-3
    # the CE-stop rows alone: a fixed-epoch row saves snapshots down to 1e-10
    cfg["ch3"]["minima"]["rows"] = [r for r in cfg["ch3"]["minima"]["rows"] if r.get("protocol") != "fixed_epochs"]
    cfg["ch3"]["minima"]["path"] = {"enabled": True, "thresholds": thresholds}
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_training_path_is_off_by_default_and_checked_only_when_on():
    cfg = preset("quick")
    del cfg["ch3"]["minima"]["path"]
    assert validate_config(cfg)["ch3"]["minima"]["path"] == {"enabled": False, "thresholds": [0.1]}
    cfg["ch3"]["minima"]["path"] = {"enabled": False, "thresholds": [0.05]}
    validate_config(cfg)
    faithful = validate_config(preset("mnist_faithful"))
    assert faithful["ch3"]["minima"]["path"]["thresholds"] == [0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6]
    assert faithful["ch3"]["invariance"]["enabled"] is False and faithful["ch2"]["enabled"] is False


@pytest.mark.parametrize("name, threads", [("quick", 1), ("cpu", 2), ("paper", 2), ("mnist_faithful", 2)])
def test_job_threads_of_each_preset(name, threads):
    # config.yaml's 1 (two jobs side by side on a 2-core laptop) is merged under every
    # other preset, so each of them must set its own value.
    cfg = preset(name)
    validate_config(cfg)
    assert cfg["job_threads"] == threads


def test_job_threads_default_and_bad_value():
    cfg = preset("quick")
    del cfg["job_threads"]
    validate_config(cfg)
    assert cfg["job_threads"] == 2
    cfg["job_threads"] = 0
    with pytest.raises(ConfigError, match="job_threads"):
        validate_config(cfg)


@pytest.mark.parametrize("value, ok", [("auto", True), ([], True), ("always", False), (0.05, False)])
def test_warm_start_is_auto_or_a_list_of_stages(value, ok):
    cfg = preset("quick")
    cfg["ch3"]["minima"]["flatness"]["warm_start"] = value
    if ok:
        validate_config(cfg)
        assert cfg["ch3"]["minima"]["flatness"]["warm_start"] == value  # an explicit [] stays cold
    else:
        with pytest.raises(ConfigError, match=r"ch3\.minima\.flatness\.warm_start"):
            validate_config(cfg)
