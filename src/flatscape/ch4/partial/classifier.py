"""The classifiers of Sec. 4.4.1: VGG-16 on full images, VGG-16-Ours on full plus partially observed ones.

VGG-16-Ours sees, every epoch, the full images and one copy observed at each
training ratio (0.5, 0.25, 0.125 in the thesis), with fresh masks every batch.
The network is the registry's VGG (``flatscape.core.models``) behind a
normalisation layer, so the saved file rebuilds it with ``core.models.load``.
"""

from __future__ import annotations

import logging

import torch

from flatscape.ch4.partial.observe import augment, observe_copies
from flatscape.ch4.partial.settings import ClassifierSettings
from flatscape.core.datasets import load
from flatscape.core.models import from_spec, model_spec
from flatscape.core.train import channel_stats, evaluate, fingerprint, fit
from flatscape.pipeline.config import as_plain
from flatscape.pipeline.io import save_json

log = logging.getLogger(__name__)


def train_classifier(settings: ClassifierSettings, data_path, *, device: torch.device, model_path, metrics_path,
                     checkpoint_path=None, progress: bool = True) -> dict:  # fmt: skip
    """Train one classifier on a cached data set; save the network (``model_path``) and its metrics (JSON)."""
    data = load(data_path)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    mean, std = channel_stats(x)
    net = settings.model
    spec = model_spec(net.name, in_channels=x.shape[1], image_size=x.shape[2], num_classes=data.num_classes,
                      mean=mean, std=std, width=net.width, batch_norm=net.batch_norm)  # fmt: skip
    torch.manual_seed(settings.seed)
    model = from_spec(spec).to(device)
    train = settings.train

    def transform(batch, idx, g):
        batch = augment(batch, g, train.augment)
        return observe_copies(batch, idx, g, num_images=len(x), ratios=settings.train_ratios)

    digest = fingerprint([spec, as_plain(settings.train), as_plain(settings.train_ratios), settings.seed])
    result = fit(
        model, x, y, epochs=train.epochs, batch_size=train.batch_size, optimiser=train.optimiser,
        seed=settings.seed, transform=transform, virtual_copies=1 + len(settings.train_ratios),
        checkpoint_path=checkpoint_path, checkpoint_every=train.checkpoint_every, fingerprint=digest,
        save_to=model_path, spec=spec, progress=progress,
    )  # fmt: skip
    test_loss, test_accuracy = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    metrics = {
        "train_ratios": [r.value for r in settings.train_ratios],
        "epochs_run": result.epochs_run,
        "train_loss": result.train_loss,
        "train_accuracy": result.train_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "seconds": result.seconds,
        "device": str(device),
        "history": result.history,
    }
    save_json(metrics_path, metrics)
    log.info("test accuracy %.4f on full images", test_accuracy)
    return metrics
