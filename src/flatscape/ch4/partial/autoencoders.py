"""The reconstruct-then-classify baselines of Sec. 4.4.1: one denoising autoencoder per observation ratio.

Recon+VGG-16 and Recon+VGG-16-Ours pass each observed image through the
autoencoder of its ratio (the registry's ``autoencoder``), then classify the result.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from flatscape.ch4.partial.observe import augment, observe_batch
from flatscape.ch4.partial.settings import AutoencoderSettings
from flatscape.core import models
from flatscape.core.datasets import load
from flatscape.core.train import fingerprint, fit
from flatscape.pipeline.config import as_plain
from flatscape.pipeline.io import save_json

log = logging.getLogger(__name__)


def train_autoencoder(settings: AutoencoderSettings, data_path, *, device: torch.device, model_path, metrics_path,
                      checkpoint_path=None, progress: bool = True) -> dict:  # fmt: skip
    """Train the denoiser of one ratio (fresh masks every batch, clean augmented images as targets)."""
    data = load(data_path)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    # The ratio the denoiser serves travels in its spec (from_spec ignores it), so a saved
    # autoencoder alone tells the Reconstructor where to route images.
    spec = {**models.model_spec("autoencoder", in_channels=x.shape[1], image_size=x.shape[2],
                                num_classes=data.num_classes, width=settings.width),
            "ratio": settings.ratio.value}  # fmt: skip
    torch.manual_seed(settings.seed)
    model = models.from_spec(spec).to(device)
    train = settings.train

    def transform(batch, idx, g):
        clean = augment(batch, g, train.augment)
        return observe_batch(clean, g, settings.ratio), clean

    result = fit(
        model, x, y, epochs=train.epochs, batch_size=train.batch_size, optimiser=train.optimiser,
        seed=settings.seed, loss=F.mse_loss, transform=transform, checkpoint_path=checkpoint_path,
        checkpoint_every=train.checkpoint_every, fingerprint=fingerprint([spec, as_plain(settings.train), settings.seed]),
        save_to=model_path, spec=spec, progress=progress,
    )  # fmt: skip
    metrics = {"ratio": settings.ratio.value, "epochs_run": result.epochs_run, "train_mse": result.train_loss,
               "seconds": result.seconds, "device": str(device), "history": result.history}  # fmt: skip
    save_json(metrics_path, metrics)
    return metrics


class Reconstructor(nn.Module):
    """Route each observed image to the autoencoder of the nearest ratio; ratio 1.0 means no reconstruction.

    For the fixed-ratio columns of Table 4.1 this is the thesis's "autoencoder of
    its ratio"; for the Random column (each image's ratio drawn from (0, 1]) it is
    our extension, since the thesis left those cells empty.
    """

    def __init__(self, autoencoders: dict[float, nn.Module]):
        super().__init__()
        self.ratios = sorted(autoencoders)
        self.nets = nn.ModuleList(autoencoders[r] for r in self.ratios)

    def route(self, ratios: torch.Tensor) -> torch.Tensor:
        """Index into ``self.ratios`` (len(self.ratios) = identity) of the nearest candidate per image."""
        candidates = torch.tensor([*self.ratios, 1.0], dtype=torch.float64)
        return (ratios.to(torch.float64)[:, None] - candidates[None, :]).abs().argmin(1)

    def forward(self, x: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        choice = self.route(ratios.cpu()).to(x.device)
        out = x.clone()
        for k, net in enumerate(self.nets):
            rows = torch.nonzero(choice == k).flatten()
            if len(rows):
                out[rows] = net(x[rows])
        return out


def load_reconstructor(paths, device: torch.device) -> Reconstructor:
    """The Reconstructor of the autoencoders saved at ``paths`` (each knows its ratio)."""
    autoencoders = {}
    for path in paths:
        net, saved = models.load(path, device)
        autoencoders[saved["spec"]["ratio"]] = net
    return Reconstructor(autoencoders).to(device)
