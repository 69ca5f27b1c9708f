import json

import numpy as np
import pandas as pd
import pytest

from flatscape.ch4.detection.boxes import box_iou
from flatscape.ch4.detection.scenes import (
    clip_box,
    generate_dataset,
    multi_truck_video,
    single_truck_video,
    still_scenes,
    truck_paint,
)
from flatscape.ch4.detection.trucks import CLASSES, SHAPES, draw_truck
from flatscape.ch4.detection.video_io import (
    FORMAT,
    Targets,
    VideoFormatError,
    read_manifest,
    read_video,
    videos_in,
    write_video,
)

SMALL = dict(height=48, width=64, fps=30.0, truck_length=0.4)


def _coverage(cls: str, box, facing_right=True, size=(40, 64)):
    canvas = np.zeros(size)
    draw_truck(canvas, box, SHAPES[cls], facing_right=facing_right, paint=0.9, contrast=0.05)
    return canvas > 0


@pytest.mark.parametrize("cls", CLASSES)
def test_truck_silhouette_touches_all_four_edges_of_its_box(cls):
    box = (10.0, 12.0, 50.0, 30.0)
    rows, cols = np.nonzero(_coverage(cls, box))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (12, 30, 10, 50)


def test_truck_classes_differ_in_silhouette():
    box = (4.0, 4.0, 60.0, 30.0)
    masks = [_coverage(c, box) for c in CLASSES]
    for i in range(3):
        for j in range(i + 1, 3):
            assert (masks[i] ^ masks[j]).mean() > 0.03


def test_truck_facing_left_is_the_mirror_image():
    box = (8.0, 5.0, 56.0, 25.0)
    right = _coverage("ram", box)
    left = _coverage("ram", box, facing_right=False)
    np.testing.assert_array_equal(left[:, 8:56], right[:, 8:56][:, ::-1])


def test_single_truck_video_is_deterministic_in_its_seed():
    a = single_truck_video("v", 1, day=1, frames=6, seed=3, **SMALL)
    b = single_truck_video("v", 1, day=1, frames=6, seed=3, **SMALL)
    c = single_truck_video("v", 1, day=1, frames=6, seed=4, **SMALL)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.targets.box, b.targets.box)
    assert not np.array_equal(a.frames, c.frames)


def test_single_truck_video_labels_one_target_of_its_class_per_frame_inside_the_frame():
    v = single_truck_video("v", 2, day=2, frames=10, seed=0, **SMALL)
    assert v.frames.shape == (10, 48, 64) and v.frames.dtype == np.uint8
    np.testing.assert_array_equal(v.targets.frame, np.arange(10))
    assert set(v.targets.cls) == {2} and len(set(v.targets.track)) == 1
    b = v.targets.box
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 48).all()


def test_truck_moves_smoothly_and_does_move():
    v = single_truck_video("v", 0, day=1, frames=150, seed=1, **SMALL)
    centres = (v.targets.box[:, :2] + v.targets.box[:, 2:]) / 2
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 2.0  # pixels per frame at 30 frames/s: no jumps
    assert np.linalg.norm(centres.max(0) - centres.min(0)) > 3.0


def test_box_marks_where_the_truck_changes_the_picture():
    # the same seed with and without the truck: pixels differ only inside the box
    v = single_truck_video("v", 0, day=1, frames=1, seed=5, **SMALL)
    rng_free = single_truck_video("v", 0, day=1, frames=1, seed=5, **{**SMALL, "truck_length": 1e-6})
    changed = np.abs(v.frames[0].astype(int) - rng_free.frames[0].astype(int)) > 0
    x0, y0, x1, y1 = v.targets.box[0]
    inside = np.zeros_like(changed)
    inside[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
    assert changed[inside].mean() > 0.5
    assert not changed[~inside].any()


def test_multi_target_video_has_three_classes_that_change_size():
    # fps=1: 60 frames span a minute, more than a full lot-to-remote cycle
    v = multi_truck_video("m", day=1, frames=60, seed=0, **{**SMALL, "fps": 1.0})
    assert sorted(set(v.targets.cls)) == [0, 1, 2]
    for track in set(v.targets.track):
        widths = np.diff(v.targets.box[v.targets.track == track][:, [0, 2]], axis=1)
        assert widths.max() / widths.min() > 1.5


def test_clip_box_reports_visible_share():
    box, visible = clip_box((-10.0, 0.0, 10.0, 10.0), height=20, width=20)
    np.testing.assert_allclose(box, [0, 0, 10, 10])
    assert visible == pytest.approx(0.5)


def test_still_scenes_keep_boxes_apart_and_inside():
    images, labels = still_scenes(20, height=64, width=64, max_objects=3, truck_length=(0.3, 0.5), seed=0)
    assert images.shape == (20, 64, 64)
    for i, t in enumerate(labels):
        assert 1 <= len(t) <= 3 and (t.frame == i).all()
        assert (t.box[:, :2] >= 0).all() and (t.box[:, 2:] <= 64).all()
        iou = box_iou(t.box, t.box)
        assert (iou[~np.eye(len(t), dtype=bool)] <= 0.3 + 1e-9).all()


def test_written_video_reads_back_identically(tmp_path):
    v = single_truck_video("day1_ram_0", 1, day=1, frames=5, seed=2, **SMALL)
    write_video(v, tmp_path / v.name, CLASSES)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": FORMAT, "classes": list(CLASSES), "fps": 30, "videos": {v.name: "train", "other": "test"}}))
    back = read_video(tmp_path, v.name)
    np.testing.assert_array_equal(back.frames, v.frames)
    np.testing.assert_allclose(back.targets.box, v.targets.box, atol=1e-3)
    np.testing.assert_array_equal(back.targets.cls, v.targets.cls)
    assert sorted(p.name for p in (tmp_path / v.name / "frames").iterdir())[:2] == ["000000.png", "000001.png"]


def test_generated_dataset_has_every_split_and_class(tmp_path):
    manifest = generate_dataset(tmp_path, height=32, width=48, frames=4, multi_target_frames=4, videos_per_class=1,
                                truck_length=0.4, seed=0)
    assert manifest == read_manifest(tmp_path)
    assert videos_in(manifest, "train") == sorted(f"day1_{c}_0" for c in CLASSES)
    assert videos_in(manifest, "test") == sorted(f"day2_{c}_0" for c in CLASSES)
    assert videos_in(manifest, "finetune") == ["multi_day1"] and videos_in(manifest, "multi_test") == ["multi_day2"]
    day1 = read_video(tmp_path, "day1_frontier_0")
    assert set(day1.targets.cls) == {CLASSES.index("frontier")}


def test_reader_names_the_bad_file_and_the_unknown_class(tmp_path):
    generate_dataset(tmp_path, height=32, width=48, frames=3, multi_target_frames=0, videos_per_class=1,
                     truck_length=0.4, seed=0)
    csv = tmp_path / "day1_ram_0" / "boxes.csv"
    df = pd.read_csv(csv)
    df.loc[0, "class"] = "tacoma"
    df.to_csv(csv, index=False)
    with pytest.raises(VideoFormatError, match=r"boxes\.csv.*tacoma"):
        read_video(tmp_path, "day1_ram_0")


def test_reader_rejects_a_box_outside_the_frame(tmp_path):
    generate_dataset(tmp_path, height=32, width=48, frames=3, multi_target_frames=0, videos_per_class=1,
                     truck_length=0.4, seed=0)
    csv = tmp_path / "day2_ram_0" / "boxes.csv"
    df = pd.read_csv(csv)
    df.loc[1, "x1"] = 80.0
    df.to_csv(csv, index=False)
    with pytest.raises(VideoFormatError, match="row 3"):
        read_video(tmp_path, "day2_ram_0")


def test_manifest_without_a_test_split_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": FORMAT, "classes": ["a"], "fps": 30, "videos": {"v": "train"}}))
    with pytest.raises(VideoFormatError, match="test"):
        read_manifest(tmp_path)


def test_targets_at_selects_one_frame():
    t = Targets(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([2, 2, 0]), np.arange(12.0).reshape(3, 4))
    sel = t.at(1)
    assert len(sel) == 2 and list(sel.track) == [0, 1]


def test_a_truck_keeps_its_paint_on_both_days_and_trucks_differ():
    assert truck_paint(0, 1, 0) == truck_paint(0, 1, 0)  # no day in the key: the same truck on day 1 and day 2
    paints = {truck_paint(0, c, k) for c in range(3) for k in range(4)}
    assert len(paints) == 12
    levels = [p for p, _ in paints]
    assert min(levels) < 0.25 and max(levels) > 0.7  # dark and light trucks both occur


def test_given_paint_sets_the_truck_not_the_scene():
    a = single_truck_video("v", 0, day=1, frames=1, seed=5, paint=(0.1, 0.05), **SMALL)
    b = single_truck_video("v", 0, day=1, frames=1, seed=5, paint=(0.9, 0.05), **SMALL)
    x0, y0, x1, y1 = a.targets.box[0]
    inside = np.zeros(a.frames[0].shape, bool)
    inside[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
    np.testing.assert_array_equal(a.frames[0][~inside], b.frames[0][~inside])
    assert b.frames[0][inside].mean() > a.frames[0][inside].mean() + 50
