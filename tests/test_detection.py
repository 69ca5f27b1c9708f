import json
import socket

import numpy as np
import pandas as pd
import pytest
import torch

from flatscape.ch4.detection.boxes import box_dice, box_iou, centroid_distance, expand_boxes, match_boxes
from flatscape.ch4.detection.coding import CodedVideo, clip_targets, code_video
from flatscape.ch4.detection.crops import ClassifierJob, _crop_augment, crop_resize, train_crop_classifier
from flatscape.ch4.detection.data import DetectorData, build_detector_dataset, yolo_label_text
from flatscape.ch4.detection.scenes import generate_dataset
from flatscape.ch4.detection.tables import table_4_2, table_4_3, table_4_4, table_multi_target
from flatscape.ch4.detection.tracking import EvaluationJob, evaluate_detection, frame_records
from flatscape.ch4.detection.video_io import Targets, Video
from flatscape.ch4.detection.yolo import YoloTraining, _resumable, resolve_model, train_yolo, ultralytics_offline
from flatscape.core.models import load
from flatscape.pipeline.config import settings
from flatscape.pipeline.naming import fraction_label

# ---- closed forms ----------------------------------------------------------------------------


def test_dice_of_known_boxes():
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 1]], float)
    b = np.array([[1, 0, 3, 2], [0, 0, 2, 2], [5, 5, 6, 6], [0, 0, 2, 1]], float)
    # half overlap: 2 * 2 / (4 + 4); identical: 1; disjoint: 0; nested: 2 * 2 / (4 + 2)
    np.testing.assert_allclose(box_dice(a, b), [0.5, 1.0, 0.0, 2 / 3])


def test_dice_and_iou_obey_dice_equals_2iou_over_1_plus_iou():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10, (50, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 5, (50, 2))], 1)
    b = a + rng.uniform(-2, 2, (50, 4))
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
    iou = np.diagonal(box_iou(a, b))
    np.testing.assert_allclose(box_dice(a, b), 2 * iou / (1 + iou), atol=1e-12)


def test_centroid_distance_of_known_boxes():
    a = np.array([[0, 0, 2, 2], [0, 0, 4, 4]], float)
    b = np.array([[3, 4, 5, 6], [0, 0, 4, 4]], float)
    np.testing.assert_allclose(centroid_distance(a, b), [5.0, 0.0])  # centres (1, 1) -> (4, 5): a 3-4-5 triangle


def test_iou_matrix_of_known_boxes():
    iou = box_iou(np.array([[0, 0, 2, 2]], float), np.array([[1, 0, 3, 2], [0, 0, 1, 1]], float))
    np.testing.assert_allclose(iou, [[2 / 6, 1 / 4]])


def test_matching_is_one_to_one_and_ignores_boxes_that_miss():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], float)
    detected = np.array([[21, 0, 31, 10], [1, 0, 11, 10], [0, 0, 9, 10], [80, 80, 90, 90]], float)
    matches = dict(match_boxes(truth, detected, min_iou=0.1))
    assert matches[1] == 0 and matches[0] in (1, 2) and 2 not in matches
    assert len(set(matches.values())) == len(matches)
    # a threshold above every overlap leaves nothing matched
    assert match_boxes(truth, detected, min_iou=0.95) == []


def test_coded_frame_ground_truth_is_union_of_boxes_over_its_clip():
    targets = Targets(frame=np.array([0, 1, 2, 3, 4, 5]), track=np.zeros(6, np.int64), cls=np.full(6, 2),
                      box=np.array([[0, 0, 4, 4], [1, 2, 5, 5], [2, 1, 6, 4], [10, 10, 12, 12],
                                    [11, 9, 13, 11], [0, 0, 1, 1]], float))
    coded = clip_targets(targets, frames_per_code=3, clips=2)
    np.testing.assert_array_equal(coded.frame, [0, 1])
    np.testing.assert_allclose(coded.box, [[0, 0, 6, 5], [0, 0, 13, 12]])
    np.testing.assert_array_equal(coded.cls, [2, 2])


def test_coded_frame_ground_truth_keeps_targets_apart_and_drops_the_trailing_partial_clip():
    targets = Targets(frame=np.array([0, 0, 1, 2]), track=np.array([0, 1, 1, 0]), cls=np.array([0, 1, 1, 0]),
                      box=np.array([[0, 0, 1, 1], [5, 5, 6, 6], [6, 5, 7, 6], [0, 0, 2, 2]], float))
    coded = clip_targets(targets, frames_per_code=2, clips=1)
    assert len(coded) == 2
    np.testing.assert_allclose(coded.box[coded.track == 1], [[5, 5, 7, 6]])


def _video(t=8, h=12, w=10, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(1, 255, (t, h, w)).astype(np.uint8)  # no zeros, so unexposed pixels show
    targets = Targets(np.arange(t), np.zeros(t, np.int64), np.zeros(t, np.int64),
                      np.tile([1.0, 1.0, 4.0, 4.0], (t, 1)))
    return Video("v", frames, targets)


def test_full_fraction_with_full_exposure_is_the_clip_mean():
    v = _video()
    coded = code_video(v, 1.0, frames_per_code=4, exposure=4, seed=0)
    expected = np.rint(v.frames.reshape(2, 4, 12, 10).astype(np.float64).mean(1))
    np.testing.assert_array_equal(coded.frames, expected.astype(np.uint8))


@pytest.mark.parametrize("fraction", [0.0625, 0.125, 0.5])
def test_coded_frames_expose_the_fraction_of_pixels(fraction):
    v = _video(t=8, h=16, w=16)
    coded = code_video(v, fraction, frames_per_code=4, exposure=2, seed=1)
    exposed = (coded.frames > 0).reshape(2, -1).sum(1)
    np.testing.assert_array_equal(exposed, round(fraction * 256))
    assert not np.array_equal(coded.frames[0] > 0, coded.frames[1] > 0)  # a fresh pattern per clip


def test_coding_is_fixed_by_seed_and_video_name():
    v = _video()
    a = code_video(v, 0.25, frames_per_code=4, exposure=2, seed=3).frames
    assert np.array_equal(a, code_video(v, 0.25, frames_per_code=4, exposure=2, seed=3).frames)
    assert not np.array_equal(a, code_video(v, 0.25, frames_per_code=4, exposure=2, seed=4).frames)
    renamed = Video("w", v.frames, v.targets)
    assert not np.array_equal(a, code_video(renamed, 0.25, frames_per_code=4, exposure=2, seed=3).frames)


def test_fraction_labels_name_files_compactly():
    assert [fraction_label(f) for f in (0.0625, 0.125, 0.5, 1.0)] == ["0.0625", "0.125", "0.5", "1"]


def test_yolo_labels_are_normalised_centre_size_and_clipped():
    text = yolo_label_text(np.array([[10, 20, 30, 60], [-10, 0, 10, 10]], float), np.array([0, 2]), 80, 40)
    first, second = [list(map(float, line.split())) for line in text.splitlines()]
    np.testing.assert_allclose(first, [0, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(second, [2, 0.125, 0.0625, 0.25, 0.125])


def test_crop_boxes_grow_by_the_context_on_every_side():
    grown = expand_boxes(np.array([[10, 20, 50, 30]], float), context=0.1)
    np.testing.assert_allclose(grown, [[6, 19, 54, 31]])
    np.testing.assert_allclose(expand_boxes(np.array([[1, 2, 3, 4]], float), context=0.0), [[1, 2, 3, 4]])


def test_crop_on_the_pixel_grid_returns_those_pixels():
    frames = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    crop = crop_resize(frames, np.array([1]), np.array([[2.0, 3.0, 6.0, 7.0]]), size=4)
    assert crop.shape == (1, 3, 4, 4)
    np.testing.assert_array_equal(crop[0, 0], frames[1, 3:7, 2:6])
    np.testing.assert_array_equal(crop[0, 1], crop[0, 0])


def test_crop_augmentation_keeps_unexposed_pixels_dark_and_varies_the_rest():
    x = torch.full((64, 3, 8, 8), 0.5)
    x[:, :, :4] = 0.0  # the unexposed half of a coded crop
    out = _crop_augment(x, torch.arange(64), torch.Generator().manual_seed(0))
    assert (out[:, :, :4] == 0).all()
    exposed = out[:, 0, 4:, :].mean(dim=(1, 2))
    assert exposed.min() < 0.4 and exposed.max() > 0.6 and ((out >= 0) & (out <= 1)).all()


def test_a_weight_name_that_is_not_a_file_is_refused():
    with pytest.raises(FileNotFoundError, match="yolov8n.pt"):
        resolve_model("yolov8n.pt")
    assert resolve_model("yolov8n.yaml") == "yolov8n.yaml"


# ---- the evaluation records and Tables 4.2-4.4 ------------------------------------------------


def _coded(n_frames=4):
    box = np.array([10.0, 10.0, 30.0, 20.0])
    targets = Targets(np.arange(n_frames), np.zeros(n_frames, np.int64), np.full(n_frames, 1), np.tile(box, (n_frames, 1)))
    return CodedVideo("day2_ram_0", 0.25, np.zeros((n_frames, 40, 40), np.uint8), targets, 4)


def _detections():
    # frame 0: exact; frame 1: shifted by 5 px; frame 2: a box elsewhere only; frame 3: nothing
    rows = [(0, 10, 10, 30, 20, 0.9, 1), (1, 15, 10, 35, 20, 0.8, 1), (2, 0, 30, 5, 39, 0.7, -1)]
    return pd.DataFrame(rows, columns=["frame", "x0", "y0", "x1", "y1", "conf", "track"])


def test_records_count_detections_of_the_target_not_boxes_elsewhere():
    classes = ["silverado", "ram", "frontier"]
    rec = frame_records(_coded(), _detections(), np.array([1, 0, 2]), classes, min_iou=0.1)
    targets = rec[rec.kind == "target"]
    assert list(targets.detected) == [True, True, False, False]
    assert (rec.kind == "false_positive").sum() == 1
    np.testing.assert_allclose(targets.dice[:2], [1.0, 0.75])  # shift by 5 of 20: 2 * 15 * 10 / 400
    np.testing.assert_allclose(targets.centroid[:2], [0.0, 5.0])
    assert list(targets.pred_class[:2]) == ["ram", "silverado"]
    # both detections are on track 1, whose majority (a tie broken by count order) is one class for both
    assert targets.track_class.iloc[0] == targets.track_class.iloc[1]


@pytest.mark.parametrize("min_iou, detected", [(0.3, True), (0.4, False)])
def test_a_half_shifted_detection_counts_only_under_a_threshold_below_its_iou(min_iou, detected):
    # truth 10x10 at the origin, detection shifted right by 5: overlap 50, union 150,
    # so IoU 1/3, DICE 2 * 50 / 200 = 0.5 and centroids (5, 5) -> (10, 5), 5 px apart
    truth = Targets(np.array([0]), np.array([0]), np.array([2]), np.array([[0.0, 0.0, 10.0, 10.0]]))
    coded = CodedVideo("multi_day2", 0.5, np.zeros((1, 20, 20), np.uint8), truth, 4)
    det = pd.DataFrame([(0, 5.0, 0.0, 15.0, 10.0, 0.6, 3)], columns=["frame", "x0", "y0", "x1", "y1", "conf", "track"])
    rec = frame_records(coded, det, np.array([2]), ["silverado", "ram", "frontier"], min_iou=min_iou)
    target = rec[rec.kind == "target"].iloc[0]
    assert bool(target.detected) is detected
    assert (rec.kind == "false_positive").sum() == (0 if detected else 1)
    if detected:
        assert target.dice == pytest.approx(0.5) and target.centroid == pytest.approx(5.0)
        assert target.pred_class == "frontier" and target.track == 3
    else:
        assert np.isnan(target.dice) and np.isnan(target.centroid) and target.track == -1


def test_tables_4_2_to_4_4_from_known_records():
    classes = ["silverado", "ram", "frontier"]
    rec = frame_records(_coded(), _detections(), np.array([1, 0, 2]), classes, min_iou=0.1)
    t2 = table_4_2(rec, classes)
    assert t2.loc[0, "coded aperture fraction"] == "25%"
    assert t2.loc[0, "Ram"] == pytest.approx(0.5)  # detected in 2 of 4 coded frames
    assert np.isnan(t2.loc[0, "Silverado"])  # no Silverado video in these records
    assert t2.loc[0, "Ram (thesis)"] == pytest.approx(0.93)
    t3 = table_4_3(rec)
    assert t3.loc[0, "DICE"] == pytest.approx(0.875) and t3.loc[0, "centroid distance (px)"] == pytest.approx(2.5)
    assert t3.loc[0, "DICE (thesis)"] == pytest.approx(0.816)
    t4 = table_4_4(rec, classes)
    assert t4.loc[0, "Ram"] == pytest.approx(0.5)  # of the 2 detected frames, 1 is called ram
    assert t4.loc[0, "Ram (thesis)"] == pytest.approx(0.95)


def test_multi_target_table_reports_false_positives_per_frame():
    classes = ["silverado", "ram", "frontier"]
    rec = frame_records(_coded(), _detections(), np.array([1, 1, 1]), classes, min_iou=0.1)
    row = table_multi_target(rec).iloc[0]
    assert row["detection rate"] == pytest.approx(0.5)
    assert row["classification rate"] == pytest.approx(1.0)
    assert row["false positives per frame"] == pytest.approx(0.25)


# ---- Ultralytics end to end, with the network cut off -----------------------------------------


class NetworkGuard:
    """Records (and refuses) every DNS lookup and every connect to a non-loopback address."""

    LOCAL = ("127.0.0.1", "::1", "localhost")

    def __init__(self, monkeypatch):
        self.attempts = []
        original_connect = socket.socket.connect

        def connect(sock, address):
            if sock.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in self.LOCAL):
                return original_connect(sock, address)
            self.attempts.append(("connect", address))
            raise OSError("network access attempted in a test")

        def lookup(name, *args, **kwargs):
            self.attempts.append(("dns", name))
            raise socket.gaierror("DNS lookup attempted in a test")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", lambda s, a: connect(s, a))
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
            monkeypatch.setattr(socket, name, lookup)


IMPORT_ATTEMPTS: list = []


@pytest.fixture(scope="module")
def ultralytics_home(tmp_path_factory):
    """Ultralytics imported the offline way (behind the network guard), with its settings under a scratch folder."""
    home = tmp_path_factory.mktemp("ultralytics")
    mp = pytest.MonkeyPatch()
    try:
        guard = NetworkGuard(mp)
        ultralytics_offline(home, threads=torch.get_num_threads())
        IMPORT_ATTEMPTS.extend(guard.attempts)
    finally:
        mp.undo()
    return home


def test_only_an_unfinished_checkpoint_is_resumed(tmp_path, ultralytics_home):
    torch.save({"optimizer": {"state": {}}, "epoch": 3}, tmp_path / "mid.pt")
    torch.save({"optimizer": None, "epoch": -1}, tmp_path / "done.pt")  # what Ultralytics leaves after the last epoch
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    assert _resumable(tmp_path / "mid.pt")
    assert not _resumable(tmp_path / "done.pt")
    assert not _resumable(tmp_path / "cut.pt")


def test_network_guard_catches_a_lookup_and_a_connect(monkeypatch):
    guard = NetworkGuard(monkeypatch)
    with pytest.raises(OSError):
        socket.getaddrinfo("example.com", 80)
    with pytest.raises(OSError), socket.socket() as s:
        s.connect(("192.0.2.1", 80))
    assert [kind for kind, _ in guard.attempts] == ["dns", "connect"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, ultralytics_home):
    """A tiny run of everything Ultralytics does here (train, fine-tune, detect+track) behind the guard.

    Settings are built from config-shaped mappings with ``settings``, as the rules' jobs build them.
    """
    mp = pytest.MonkeyPatch()
    guard = NetworkGuard(mp)
    work = tmp_path_factory.mktemp("det")
    threads_before = torch.get_num_threads()
    out = {"guard": guard, "work": work, "home": ultralytics_home}
    optimiser = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
    yolo = {"model": "yolov8n.yaml", "imgsz": 64, "epochs": 1, "batch": 8, "optimiser": optimiser,
            "ultralytics_args": {"val": False, "warmup_epochs": 0, "mosaic": 0.0}}
    cpu = torch.device("cpu")
    try:
        ultralytics_offline(ultralytics_home, threads=threads_before)  # again: a second call must be harmless
        generate_dataset(work / "videos", height=64, width=64, frames=16, multi_target_frames=0, videos_per_class=1,
                         truck_length=0.5, seed=0)
        build_detector_dataset(work / "videos", work / "yolo", settings(DetectorData, {
            "splits": ["train"], "train_fractions": [0.125], "frames_per_code": 4, "exposure": 2, "raw_stride": 4,
            "val_fraction": 0.25, "seed": 0}))
        data_yaml = work / "yolo" / "data.yaml"
        out["train"] = train_yolo(settings(YoloTraining, yolo), data_yaml, run_dir=work / "runs" / "base",
                                  out_weights=work / "yolo_base.pt", seed=0, device=cpu)
        out["threads_after_train"] = torch.get_num_threads()
        # from a local weight file: how the finetune stage (and the paper preset) starts
        out["finetune"] = train_yolo(settings(YoloTraining, {**yolo, "model": str(work / "yolo_base.pt")}), data_yaml,
                                     run_dir=work / "runs" / "finetune", out_weights=work / "yolo_finetune.pt", seed=0,
                                     device=cpu)
        crops = {"fractions": [0.125], "frames_per_code": 4, "exposure": 2, "raw_stride": 2, "val_fraction": 0.25,
                 "crop_size": 32, "context": 0.1, "jitter": 0.1}
        out["classifier"] = train_crop_classifier(work / "videos", settings(ClassifierJob, {
            "splits": ["train"], "crops": crops, "train": {"epochs": 1, "batch_size": 16, "optimiser": optimiser},
            "weights": None, "seed": 0, "device": "cpu"}), model_path=work / "resnet.pt", metrics_path=work / "resnet.json")
        out["records"] = evaluate_detection(work / "videos", settings(EvaluationJob, {
            "split": "test", "fractions": [0.25], "frames_per_code": 4, "exposure": 2, "imgsz": 64, "conf": 0.01,
            "iou": 0.5, "match_iou": 0.0, "tracker": "bytetrack.yaml", "crop_size": 32, "context": 0.1, "seed": 0,
            "device": "cpu"}), detector=work / "yolo_base.pt", classifier=work / "resnet.pt", out_csvs=[work / "eval.csv"],
            config_dir=ultralytics_home, threads=threads_before)[0]
        # the same fraction again as the second of two in one job: it must not see the first
        out["pair"] = evaluate_detection(work / "videos", settings(EvaluationJob, {
            "split": "test", "fractions": [0.5, 0.25], "frames_per_code": 4, "exposure": 2, "imgsz": 64, "conf": 0.01,
            "iou": 0.5, "match_iou": 0.0, "tracker": "bytetrack.yaml", "crop_size": 32, "context": 0.1, "seed": 0,
            "device": "cpu"}), detector=work / "yolo_base.pt", classifier=work / "resnet.pt",
            out_csvs=[work / "eval_half.csv", work / "eval_quarter.csv"], config_dir=ultralytics_home,
            threads=threads_before)
        out["threads_before"] = threads_before
    finally:
        mp.undo()
    return out


@pytest.mark.slow
def test_ultralytics_pipeline_attempts_no_network_access(pipeline):
    assert IMPORT_ATTEMPTS == []
    assert pipeline["guard"].attempts == []


@pytest.mark.slow
def test_ultralytics_settings_and_fonts_stay_in_the_working_folder(pipeline):
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    assert USER_CONFIG_DIR == pipeline["home"] / "Ultralytics"
    assert (USER_CONFIG_DIR / "Arial.ttf").exists() and (USER_CONFIG_DIR / "Arial.Unicode.ttf").exists()
    saved = json.loads((USER_CONFIG_DIR / "settings.json").read_text())
    assert saved["sync"] is False and not any(v is True for v in saved.values())
    assert SETTINGS["sync"] is False


@pytest.mark.slow
def test_training_keeps_the_jobs_thread_count(pipeline):
    assert pipeline["threads_after_train"] == pipeline["threads_before"]


@pytest.mark.slow
def test_training_writes_weights_and_history(pipeline):
    from ultralytics import YOLO

    assert pipeline["train"]["epochs"] == 1 and len(pipeline["train"]["history"]) == 1
    assert pipeline["finetune"]["model"] == str(pipeline["work"] / "yolo_base.pt")
    for name in ("yolo_base.pt", "yolo_finetune.pt"):
        assert YOLO(str(pipeline["work"] / name)).names == {0: "truck"}


@pytest.mark.slow
def test_classifier_is_saved_with_the_spec_that_rebuilds_it(pipeline):
    model, record = load(pipeline["work"] / "resnet.pt")
    assert record["spec"]["name"] == "resnet18" and record["spec"]["image_size"] == 32
    assert record["spec"]["num_classes"] == 3 and len(record["spec"]["mean"]) == 3
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert pipeline["classifier"]["classes"] == ["silverado", "ram", "frontier"]


@pytest.mark.slow
def test_evaluation_writes_one_record_per_coded_frame_and_target(pipeline):
    rec = pd.read_csv(pipeline["work"] / "eval.csv")
    targets = rec[rec.kind == "target"]
    # three test videos of 16 frames, 4 frames per coded frame, one truck each
    assert targets.groupby("video").size().to_dict() == {f"day2_{c}_0": 4 for c in ("frontier", "ram", "silverado")}
    assert (targets.video == "day2_" + targets.true_class + "_0").all()
    # every score is that of the boxes the record holds, and missing for an undetected target
    hit, miss = targets[targets.detected.astype(bool)], targets[~targets.detected.astype(bool)]
    t, d = hit[["tx0", "ty0", "tx1", "ty1"]].to_numpy(), hit[["dx0", "dy0", "dx1", "dy1"]].to_numpy()
    np.testing.assert_allclose(hit.dice, box_dice(t, d))
    np.testing.assert_allclose(hit.centroid, centroid_distance(t, d))
    assert miss.dice.isna().all() and (miss.track == -1).all()
    assert (rec[rec.kind == "false_positive"].dice.isna()).all()


@pytest.mark.slow
def test_a_fraction_evaluated_beside_another_gives_the_records_it_gives_alone(pipeline):
    half, quarter = pipeline["pair"]
    assert set(half.fraction) == {0.5} and set(quarter.fraction) == {0.25}
    alone = pd.read_csv(pipeline["work"] / "eval.csv")
    pd.testing.assert_frame_equal(pd.read_csv(pipeline["work"] / "eval_quarter.csv"), alone)
    assert not pd.read_csv(pipeline["work"] / "eval_half.csv").equals(alone)


def test_evaluation_with_a_missing_output_file_fails_before_loading_anything(tmp_path):
    job = settings(EvaluationJob, {
        "split": "test", "fractions": [0.25, 0.5], "frames_per_code": 4, "exposure": 2, "imgsz": 64, "conf": 0.01,
        "iou": 0.5, "match_iou": 0.0, "tracker": "bytetrack.yaml", "crop_size": 32, "context": 0.1, "seed": 0,
        "device": "cpu"})  # fmt: skip
    with pytest.raises(ValueError, match="2 fractions but 1 output files"):
        evaluate_detection(tmp_path / "no_videos", job, detector=tmp_path / "no.pt", classifier=tmp_path / "no.pt",
                           out_csvs=[tmp_path / "a.csv"], config_dir=tmp_path / "u", threads=1)  # fmt: skip
    assert list(tmp_path.iterdir()) == []
