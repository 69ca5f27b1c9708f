"""Figures 4.3-4.5: PCE against a conventional camera, coded frames, and detections on coded frames."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from flatscape.ch4.detection.coding import code_video, derived_seed, percent_label  # noqa: E402
from flatscape.ch4.detection.tables import read_records, targets  # noqa: E402
from flatscape.ch4.detection.video_io import Video, read_manifest, read_video, videos_in  # noqa: E402
from flatscape.core.encoders import pce_encode  # noqa: E402
from flatscape.pipeline.io import save_figure  # noqa: E402

THESIS_VIDEO = "frontier"  # the thesis shows a Frontier in Figures 4.4 and 4.5


@dataclass(frozen=True)
class CodingFigure:
    """Figure 4.3: one PCE fraction and the coding of a clip."""

    fraction: float
    frames_per_code: int
    exposure: int
    seed: int


@dataclass(frozen=True)
class CodedPanels:
    """Figures 4.4 and 4.5: one panel per PCE fraction."""

    fractions: tuple[float, ...]
    frames_per_code: int
    exposure: int
    seed: int


def _thesis_video(names: list[str]) -> str:
    return next((n for n in names if THESIS_VIDEO in n), names[0])


def plot_figure_4_3(videos_root, fig_settings: CodingFigure, path, *, pixels: int = 24) -> None:
    """Figure 4.3: conventional frames vs pixel-wise coded exposure, drawn from a real ``pce_encode`` mask.

    On the first training video: (a) a conventional camera exposes every pixel in every
    frame; (b) PCE's S(m, n, t) for ``pixels`` pixels of one row: active pixels
    integrate ``exposure`` frames from their own start; (c) the coded frame Y = sum_t S X.
    """
    s = fig_settings
    video = read_video(videos_root, videos_in(read_manifest(videos_root), "train")[0])
    clip = video.frames[: s.frames_per_code]
    coded, mask = pce_encode(clip, s.fraction, exposure=s.exposure, seed=derived_seed(s.seed, "figure_4_3"),
                             return_mask=True)  # fmt: skip
    row = mask.shape[1] // 2
    strip = mask[:, row, :pixels].T.astype(float)  # (pixels, T)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    axes[0].imshow(np.ones_like(strip), cmap="Greys", vmin=0, vmax=1.2, aspect="auto", interpolation="nearest")
    axes[0].set_title(f"(a) conventional: {s.frames_per_code} frames,\nevery pixel exposed (dark) in every frame")
    axes[1].imshow(strip, cmap="Greys", vmin=0, vmax=1.2, aspect="auto", interpolation="nearest")
    axes[1].set_title(f"(b) PCE exposure S(m, n, t): {percent_label(s.fraction)} of pixels\n"
                      f"exposed (dark) for {s.exposure} frames each")  # fmt: skip
    for ax in axes[:2]:
        ax.set_xlabel("frame t")
        ax.set_ylabel(f"pixel n (row {row})")
        ax.set_xticks(range(s.frames_per_code))
        for t in range(s.frames_per_code + 1):
            ax.axvline(t - 0.5, color="tab:blue", lw=0.5)
    axes[2].imshow(coded / s.exposure, cmap="gray", vmin=0, vmax=255)
    axes[2].axhline(row, color="tab:red", lw=0.8)
    axes[2].set_title("(c) one motion-coded frame Y = sum_t S X")
    axes[2].axis("off")
    fig.suptitle("Figure 4.3: conventional camera vs pixel-wise coded exposure (PCE)")
    save_figure(fig, path)


def plot_figure_4_4(videos_root, panels: CodedPanels, path) -> None:
    """Figure 4.4: a raw training frame and the coded frames of its clip at each fraction (50/25/12.5% in the thesis)."""
    video: Video = read_video(videos_root, _thesis_video(videos_in(read_manifest(videos_root), "train")))
    clip = len(video.frames) // panels.frames_per_code // 2
    fig, axes = plt.subplots(1, 1 + len(panels.fractions), figsize=(3.2 * (1 + len(panels.fractions)), 3.2))
    axes[0].imshow(video.frames[clip * panels.frames_per_code], cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("(a) sample frame")
    for k, (ax, f) in enumerate(zip(axes[1:], panels.fractions)):
        coded = code_video(video, f, frames_per_code=panels.frames_per_code, exposure=panels.exposure, seed=panels.seed)
        ax.imshow(coded.frames[clip], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"({chr(98 + k)}) {percent_label(f)} PCE")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"Figure 4.4: a frame of {video.name} and its PCE measurements")
    save_figure(fig, path)


def pick_figure_frame(records: pd.DataFrame, video: str) -> int:
    """The coded frame of ``video`` detected at the most fractions (ties: the middle one)."""
    t = targets(records)
    t = t[t.video == video]
    score = t.groupby("frame")["detected"].sum()
    best = score[score == score.max()].index.to_numpy()
    return int(best[len(best) // 2]) if len(best) else 0


def plot_figure_4_5(videos_root, eval_csvs, panels: CodedPanels, path) -> None:
    """Figure 4.5: a test frame at each fraction with the detections and their predicted classes (ground truth dashed).

    ``eval_csvs`` are the evaluation records of ``panels.fractions``, in that order.
    """
    records = {f: read_records([p]) for f, p in zip(panels.fractions, eval_csvs)}
    video = _thesis_video(sorted(set(records[max(records)]["video"])))
    fractions = sorted(records, reverse=True)
    raw = read_video(videos_root, video)
    frame = pick_figure_frame(pd.concat(records.values()), video)
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.6 * len(fractions), 3.4), squeeze=False)
    for k, (ax, f) in enumerate(zip(axes[0], fractions)):
        coded = code_video(raw, f, frames_per_code=panels.frames_per_code, exposure=panels.exposure, seed=panels.seed)
        ax.imshow(coded.frames[frame], cmap="gray", vmin=0, vmax=255)
        rec = records[f]
        rec = rec[(rec.video == video) & (rec.frame == frame)]
        for _, r in rec.iterrows():
            if r.kind == "target":
                ax.add_patch(plt.Rectangle((r.tx0 - 0.5, r.ty0 - 0.5), r.tx1 - r.tx0, r.ty1 - r.ty0, fill=False,
                                           ec="tab:red", ls="--", lw=1))  # fmt: skip
            if bool(r.detected):
                ax.add_patch(plt.Rectangle((r.dx0 - 0.5, r.dy0 - 0.5), r.dx1 - r.dx0, r.dy1 - r.dy0, fill=False,
                                           ec="lime", lw=1.5))  # fmt: skip
                ax.text(r.dx0, r.dy0 - 1.5, f"{r.pred_class} {r.conf:.2f}", color="lime", fontsize=8,
                        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})  # fmt: skip
        ax.set_title(f"({chr(97 + k)}) {percent_label(f)} PCE measurements")
        ax.axis("off")
    fig.suptitle(f"Figure 4.5: detection and classification, {video} coded frame {frame} "
                 "(green: detection and predicted class; red dashed: ground truth)", fontsize=9)  # fmt: skip
    save_figure(fig, path)
