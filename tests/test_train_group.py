"""Issue 23: ``fit`` without per-step host reads equals the former loop; seeds trained as one stack equal seeds trained alone."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flatscape.core.models import from_spec, model_spec
from flatscape.core.train import ForeignRunError, Optimiser, epoch_generator, fit
from flatscape.core.train_group import fit_group


def _data(n=64, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    y = (x[:, 0, : size // 2].float().mean((1, 2)) > x[:, 0, size // 2 :].float().mean((1, 2))).long()
    return x, y


def _spec(name):
    return model_spec(name, in_channels=1, image_size=12, num_classes=2, mean=[0.5], std=[0.3], bias=False)


def _net(spec, seed):
    torch.manual_seed(seed)
    return from_spec(spec)


ADAM = Optimiser(name="adam", lr=3e-3)


# --- item 1: the former loop, verbatim but for checkpoints, as the reference -------------------------------


@torch.no_grad()
def _legacy_evaluate(model, images, labels, batch_size):
    model.eval()
    total, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size].float().div_(255.0), labels[start : start + batch_size]
        out = model(x)
        total += F.cross_entropy(out.double(), y, reduction="sum").item()  # float64 log-softmax since issue 29
        correct += (out.argmax(1) == y).sum().item()
    model.train()
    return total / len(images), correct / len(images)


def _legacy_fit(model, images, labels, *, epochs, batch_size, optimiser, seed, transform=None, stop_loss=None):
    n, opt, step, history = len(images), optimiser.build(model.parameters()), 0, []
    for epoch in range(epochs):
        g = epoch_generator(seed, epoch)
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=g)))
        model.train()
        running, seen, correct = 0.0, 0, 0
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            for group in opt.param_groups:
                group["lr"] = optimiser.lr_at(step, epoch)
            x = images[idx].float().div_(255.0)
            if transform is not None:
                x = transform(x, idx, g)
            target = labels[idx]
            out = model(x)
            batch_loss = F.cross_entropy(out, target)
            if not torch.isfinite(batch_loss):
                raise FloatingPointError(f"non-finite training loss ({batch_loss.item()}) at epoch {epoch + 1}, step {step}")
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            step += 1
            running += batch_loss.item() * len(idx)
            correct += (out.argmax(1) == target).sum().item()
            seen += len(idx)
        record = {"epoch": epoch + 1, "loss": running / seen, "accuracy": correct / seen, "lr": optimiser.lr_at(step, epoch)}
        if stop_loss is not None:
            record["full_loss"], record["full_accuracy"] = _legacy_evaluate(model, images, labels, max(batch_size, 1024))
        history.append(record)
        if stop_loss is not None and record["full_loss"] < stop_loss and record["full_accuracy"] == 1.0:
            break
    return history


def _noisy(x, idx, g):
    return x + 0.01 * torch.randn(x.shape, generator=g)


@pytest.mark.parametrize("optimiser", [ADAM, Optimiser(name="sgd", lr=0.05, lr_decay=0.01)])
def test_fit_without_host_reads_equals_the_former_loop_bit_for_bit(optimiser):
    x, y = _data()

    def net():  # dropout and a noisy transform: the global and per-epoch random streams must stay in step
        torch.manual_seed(4)
        return nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))

    old, new = net(), net()
    history = _legacy_fit(old, x, y, epochs=4, batch_size=24, optimiser=optimiser, seed=7, transform=_noisy, stop_loss=1e-9)
    result = fit(new, x, y, epochs=4, batch_size=24, optimiser=optimiser, seed=7, transform=_noisy, stop_loss=1e-9,
                 progress=False)  # fmt: skip
    assert result.history == history  # float64 sums on the device equal the host's float sums exactly
    assert all(torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters()))


def test_a_non_finite_loss_names_its_epoch_and_first_step():
    x, y = _data()
    calls = []

    def poison(batch, idx, g):  # finite until the 2nd batch of the 2nd epoch (3 batches an epoch)
        calls.append(1)
        return batch * float("nan") if len(calls) >= 5 else batch

    with pytest.raises(FloatingPointError, match=r"non-finite training loss \(nan\) at epoch 2, step 4$"):
        fit(_net(_spec("f1"), 0), x, y, epochs=3, batch_size=24, optimiser=ADAM, seed=0, transform=poison, progress=False)


# --- item 2: a group of seeds ------------------------------------------------------------------------------


def _close(a: nn.Module, b: nn.Module, atol=1e-4):
    return all(torch.allclose(p, q, rtol=0, atol=atol) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _histories_close(h1, h2):
    assert [r["epoch"] for r in h1] == [r["epoch"] for r in h2]
    for a, b in zip(h1, h2):
        assert a.keys() == b.keys()
        for key in a:
            assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-6), (key, a, b)


@pytest.mark.parametrize("name, seeds, epochs", [("f1", [0, 1], 6), ("lenet", [1, 3, 0], 8)])
def test_a_seed_in_a_group_equals_the_seed_alone_including_one_that_stops_earlier(name, seeds, epochs):
    x, y = _data()
    spec = _spec(name)
    alone = []
    for s in seeds:
        model = _net(spec, s)
        alone.append((model, fit(model, x, y, epochs=epochs, batch_size=16, optimiser=ADAM, seed=s, stop_loss=0.05,
                                 progress=False)))  # fmt: skip
    hooked = {s: [] for s in seeds}
    models = [_net(spec, s) for s in seeds]
    hooks = [lambda m, h, s=s: hooked[s].append((h[-1]["epoch"], [p.detach().clone() for p in m.parameters()])) for s in seeds]
    group = fit_group(models, x, y, epochs=epochs, batch_size=16, optimiser=ADAM, seeds=seeds, stop_loss=0.05,
                      after_epoch=hooks, progress=False)  # fmt: skip
    runs = [r.epochs_run for _, r in alone]
    assert len(set(runs)) > 1  # the case of the issue: one seed stops while others train on
    for s, (model, single), grouped, result in zip(seeds, alone, models, group):
        assert result.epochs_run == single.epochs_run and result.steps == single.steps
        assert result.reached_threshold == single.reached_threshold and result.error is None
        _histories_close(result.history, single.history)
        assert _close(model, grouped)
        assert [e for e, _ in hooked[s]] == list(range(1, single.epochs_run + 1))  # the hook saw the seed's own epochs
        assert all(torch.equal(p, q) for p, q in zip(hooked[s][-1][1], grouped.parameters()))


def test_a_group_resumes_from_its_checkpoints_and_single_runs_from_group_checkpoints(tmp_path):
    x, y = _data()
    spec, seeds = _spec("f1"), [0, 1]

    def group(folder, epochs):
        models = [_net(spec, s) for s in seeds]
        results = fit_group(models, x, y, epochs=epochs, batch_size=16, optimiser=ADAM, seeds=seeds, stop_loss=0.05,
                            checkpoint_paths=[folder / f"s{s}.ckpt" for s in seeds], fingerprints=["a", "b"],
                            progress=False)  # fmt: skip
        return models, results

    full, full_results = group(tmp_path / "full", 6)
    group(tmp_path / "cut", 2)  # "killed" after 2 epochs: the checkpoints are at epoch 2
    resumed, resumed_results = group(tmp_path / "cut", 6)
    for a, b, ra, rb in zip(full, resumed, full_results, resumed_results):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert ra.history == rb.history
    # A group checkpoint is a single run's checkpoint: seed 0 goes on alone from it.
    group(tmp_path / "mixed", 2)
    single = _net(spec, 0)
    result = fit(single, x, y, epochs=6, batch_size=16, optimiser=ADAM, seed=0, stop_loss=0.05,
                 checkpoint_path=tmp_path / "mixed" / "s0.ckpt", fingerprint="a", progress=False)  # fmt: skip
    assert result.epochs_run == full_results[0].epochs_run and _close(single, full[0])
    with pytest.raises(ForeignRunError, match="other settings"):
        fit_group([_net(spec, s) for s in seeds], x, y, epochs=6, batch_size=16, optimiser=ADAM, seeds=seeds,
                  checkpoint_paths=[tmp_path / "mixed" / "s0.ckpt", None], fingerprints=["other", ""],
                  progress=False)  # fmt: skip


def test_a_seed_whose_loss_turns_non_finite_stops_and_the_others_finish(tmp_path):
    x, y = _data()
    spec, seeds = _spec("f1"), [0, 1]
    models = [_net(spec, s) for s in seeds]
    with torch.no_grad():
        next(models[1].parameters()).fill_(float("nan"))
    results = fit_group(models, x, y, epochs=6, batch_size=16, optimiser=ADAM, seeds=seeds, stop_loss=0.05,
                        save_to=[tmp_path / "a.pt", tmp_path / "b.pt"], spec=spec, progress=False)  # fmt: skip
    assert results[1].error is not None and "non-finite training loss (nan) at epoch 1, step 0 (seed 1" in results[1].error
    assert results[1].reached_threshold is False and not (tmp_path / "b.pt").exists()
    alone = _net(spec, 0)
    single = fit(alone, x, y, epochs=6, batch_size=16, optimiser=ADAM, seed=0, stop_loss=0.05, progress=False)
    assert results[0].error is None and results[0].epochs_run == single.epochs_run and _close(alone, models[0])
    assert (tmp_path / "a.pt").exists()


def test_a_group_refuses_what_it_cannot_train_exactly():
    x, y = _data()
    drop = [nn.Sequential(nn.Flatten(), nn.Linear(144, 4), nn.Dropout(0.1), nn.Linear(4, 2)) for _ in range(2)]
    with pytest.raises(ValueError, match="Dropout.*seeds_per_job"):
        fit_group(drop, x, y, epochs=1, batch_size=16, optimiser=ADAM, seeds=[0, 1], progress=False)
    bn = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(200, 2)) for _ in range(2)]
    with pytest.raises(ValueError, match="BatchNorm2d"):
        fit_group(bn, x, y, epochs=1, batch_size=16, optimiser=ADAM, seeds=[0, 1], progress=False)
    with pytest.raises(ValueError, match="same architecture"):
        fit_group([_net(_spec("f1"), 0), _net(_spec("lenet"), 1)], x, y, epochs=1, batch_size=16, optimiser=ADAM,
                  seeds=[0, 1], progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="seeds: need 2 distinct seeds"):
        fit_group([_net(_spec("f1"), 0)] * 2, x, y, epochs=1, batch_size=16, optimiser=ADAM, seeds=[0, 0], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_cuda_a_seed_in_a_group_equals_the_seed_alone_and_fit_equals_the_former_loop():
    from flatscape.core.train import exact_float32

    with exact_float32():  # as Chapter 3's runs train: TF32 convolutions differ by kernel
        _cuda_group_equals_alone()


def _cuda_group_equals_alone():
    x, y = (t.cuda() for t in _data())
    spec, seeds = _spec("lenet"), [1, 3, 0]
    alone = []
    for s in seeds:
        model = _net(spec, s).cuda()
        alone.append((model, fit(model, x, y, epochs=8, batch_size=16, optimiser=ADAM, seed=s, stop_loss=0.05,
                                 progress=False)))  # fmt: skip
    models = [_net(spec, s).cuda() for s in seeds]
    group = fit_group(models, x, y, epochs=8, batch_size=16, optimiser=ADAM, seeds=seeds, stop_loss=0.05, progress=False)
    for (model, single), grouped, result in zip(alone, models, group):
        assert result.epochs_run == single.epochs_run and result.error is None
        _histories_close(result.history, single.history)
        assert _close(model, grouped)
    old, new = _net(spec, 5).cuda(), _net(spec, 5).cuda()
    history = _legacy_fit(old, x, y, epochs=3, batch_size=24, optimiser=ADAM, seed=7, stop_loss=1e-9)
    result = fit(new, x, y, epochs=3, batch_size=24, optimiser=ADAM, seed=7, stop_loss=1e-9, progress=False)
    _histories_close(result.history, history)  # cuDNN may pick other kernels between runs: close, not equal


# --- item 4: Chapter 3's runs, several seeds per job -------------------------------------------------------


def _write_dataset(path):
    """The task of :func:`_data` as a data set file: hard enough that seeds stop at different epochs."""
    import numpy as np

    from flatscape.pipeline.io import save_arrays

    x, y = _data(n=96)
    save_arrays(path, x_train=x[:64].numpy(), y_train=y[:64].numpy(), x_test=x[64:].numpy(), y_test=y[64:].numpy(),
                classes=np.array(["a", "b"]), name=np.array("digits"))  # fmt: skip
    return path


def _run_settings(seed, stop_loss=0.05, epochs=12):
    from flatscape.ch3.settings import RunSettings
    from flatscape.pipeline.config import settings

    return settings(RunSettings, dict(
        network="f1", bias=False, train_size=None, batch_size=16, epochs=epochs, stop_loss=stop_loss, seed=seed,
        optimiser={"name": "adam", "lr": 3e-3, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0, "step_size": 0,
                   "gamma": 1.0},
        checkpoint_every=1, device="cpu"))  # fmt: skip


def _paths(folder, seeds):
    return dict(model_paths=[folder / f"s{s}.pt" for s in seeds], metrics_paths=[folder / f"s{s}.json" for s in seeds],
                checkpoint_paths=[folder / f"s{s}.ckpt" for s in seeds], snapshot_dirs=[folder / f"s{s}_path" for s in seeds])  # fmt: skip


@pytest.mark.parametrize("stop_loss, epochs", [(0.05, 12), (None, 5)], ids=["ce_stop", "fixed_epochs"])
def test_runs_trained_in_one_job_end_like_runs_trained_alone(tmp_path, one_thread, stop_loss, epochs):
    from flatscape.ch3 import train
    from flatscape.core.models import load as load_network

    data = _write_dataset(tmp_path / "d.npz")
    seeds = [0, 1, 3]
    runs = [_run_settings(s, stop_loss, epochs) for s in seeds]
    alone = train.train_minima(data, runs[:1], device=torch.device("cpu"), progress=False, **_paths(tmp_path / "a", seeds[:1]))
    alone += [train.train_minima(data, [r], device=torch.device("cpu"), progress=False, **_paths(tmp_path / "a", [s]))[0]
              for r, s in zip(runs[1:], seeds[1:])]  # fmt: skip
    group = train.train_minima(data, runs, device=torch.device("cpu"), progress=False, **_paths(tmp_path / "g", seeds))
    if stop_loss is not None:
        assert len({m["epochs_run"] for m in alone}) > 1  # one seed stops before another
    for s, a, g in zip(seeds, alone, group):
        assert a.keys() == g.keys() and g["snapshots"]
        for key in ("fingerprint", "epochs_run", "steps", "reached_threshold", "protocol", "snapshots"):
            if key == "snapshots":
                assert [x["file"] for x in a[key]] == [x["file"] for x in g[key]] and [x["epoch"] for x in a[key]] == [x["epoch"] for x in g[key]]
            else:
                assert a[key] == g[key], key
        _histories_close(g["history"], a["history"])
        assert math.isclose(a["test_loss"], g["test_loss"], rel_tol=1e-4)
        net_a, net_g = load_network(tmp_path / "a" / f"s{s}.pt")[0], load_network(tmp_path / "g" / f"s{s}.pt")[0]
        assert _close(net_a, net_g)
        assert sorted(p.name for p in (tmp_path / "a" / f"s{s}_path").iterdir()) == sorted(
            p.name for p in (tmp_path / "g" / f"s{s}_path").iterdir())
        assert not (tmp_path / "g" / f"s{s}.ckpt").exists()  # superseded by the saved network, as alone


def test_a_job_refuses_runs_that_differ_in_more_than_the_seed(tmp_path):
    from flatscape.ch3 import train

    runs = [_run_settings(0), _run_settings(1, stop_loss=1e-3)]
    with pytest.raises(ValueError, match="differ only in their seed"):
        train.train_minima(tmp_path / "missing.npz", runs, device=torch.device("cpu"), progress=False, **_paths(tmp_path, [0, 1]))


def test_a_job_whose_seed_turns_non_finite_saves_the_others_and_then_fails(tmp_path, one_thread, monkeypatch):
    from flatscape.ch3 import train
    from flatscape.pipeline.io import load_json

    data = _write_dataset(tmp_path / "d.npz")
    start = train._start

    def poisoned(run, *args):  # fault injection: seed 1 starts from NaN weights
        spec, model, digest = start(run, *args)
        if run.seed == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return spec, model, digest

    monkeypatch.setattr(train, "_start", poisoned)
    paths = _paths(tmp_path, [0, 1])
    with pytest.raises(FloatingPointError, match=r"at epoch 1, step 0 \(seed 1;"):
        train.train_minima(data, [_run_settings(0), _run_settings(1)], device=torch.device("cpu"), progress=False, **paths)
    good, bad = (load_json(p) for p in paths["metrics_paths"])
    assert good["reached_threshold"] is True and "error" not in good and (tmp_path / "s0.pt").exists()
    assert "non-finite training loss" in bad["error"] and not (tmp_path / "s1.pt").exists()
    assert (tmp_path / "s0.ckpt").exists()  # kept: the rerun of the failed job finds seed 0 finished
    monkeypatch.undo()
    again = train.train_minima(data, [_run_settings(0)], device=torch.device("cpu"), progress=False,
                               **_paths(tmp_path, [0]))[0]  # fmt: skip
    assert again["epochs_run"] == good["epochs_run"] and again["history"] == good["history"]  # not trained past its stop


def test_the_config_checks_list_of_ungroupable_networks_is_the_libraries():
    from flatscape.core.models import REGISTRY
    from flatscape.core.train_group import inexact_layers
    from flatscape.pipeline.naming import UNGROUPABLE_NETWORKS

    found = {n: tuple(inexact_layers(n)) for n in REGISTRY if inexact_layers(n)}
    assert found == UNGROUPABLE_NETWORKS
