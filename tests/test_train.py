import math

import pytest
import torch
from torch import nn

from flatscape.core.train import ForeignRunError, Optimiser, evaluate, fit


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    y = (x[:, 0, 0, 0] > 127).long()
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))


def _noisy(x, idx, g):
    return x + 0.01 * torch.randn(x.shape, generator=g)


def _run(tmp_path=None, epochs=8, name="ckpt.pt"):
    x, y = _data()
    model = _model()
    result = fit(model, x, y, epochs=epochs, batch_size=16, optimiser=Optimiser(lr=0.1), seed=3,
                              transform=_noisy, checkpoint_path=tmp_path / name if tmp_path else None,
                              checkpoint_every=2, progress=False)
    return model, result


def test_training_reduces_loss():
    x, y = _data()
    model = _model()
    before, _ = evaluate(model, x, y)
    _, result = _run()
    model, _ = _run()
    after, acc = evaluate(model, x, y)
    assert after < before and acc > 0.8


def test_same_seed_gives_same_weights():
    a, _ = _run()
    b, _ = _run()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_resumed_run_ends_with_same_weights_as_uninterrupted(tmp_path):
    full, _ = _run(epochs=6)
    _run(tmp_path, epochs=4)  # "killed" after 4 of 6 epochs: its checkpoint is at epoch 4
    resumed, result = _run(tmp_path, epochs=6)
    assert result.epochs_run == 6
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_of_other_settings_fails_before_training_and_is_kept(tmp_path):
    x, y = _data()
    fit(_model(), x, y, epochs=2, batch_size=16, optimiser=Optimiser(lr=0.1), seed=3,
                     checkpoint_path=tmp_path / "c.pt", fingerprint="a", progress=False)
    before = (tmp_path / "c.pt").read_bytes()
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ForeignRunError, match="other settings.*delete it"):
        fit(model, x, y, epochs=2, batch_size=16, optimiser=Optimiser(lr=0.1), seed=3,
            checkpoint_path=tmp_path / "c.pt", fingerprint="b", progress=False)
    assert (tmp_path / "c.pt").read_bytes() == before  # never overwritten by the other run
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), start))  # nothing trained


def test_after_epoch_sees_each_record_and_does_not_change_training():
    x, y = _data()
    seen = []
    model = _model()
    fit(model, x, y, epochs=3, batch_size=16, optimiser=Optimiser(lr=0.1), seed=3, transform=_noisy,
        after_epoch=lambda m, history: seen.append((m is model, history[-1]["epoch"])), progress=False)
    plain, _ = _run(epochs=3)
    assert seen == [(True, 1), (True, 2), (True, 3)]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), plain.parameters()))


def test_nan_loss_fails_loudly():
    x, y = _data()
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        fit(_model(), x, y, epochs=1, batch_size=16, optimiser=Optimiser(lr=0.1), seed=0,
                         transform=lambda b, i, g: b * float("nan"), progress=False)


def test_stop_threshold_is_recorded():
    x, y = _data()
    result = fit(_model(), x, y, epochs=2, batch_size=16, optimiser=Optimiser(lr=0.1), seed=0,
                              stop_loss=1e-12, progress=False)
    assert result.reached_threshold is False and result.epochs_run == 2


def test_learning_rate_schedules():
    opt = Optimiser(lr=0.1, lr_decay=0.5, step_size=2, gamma=0.5)
    assert opt.lr_at(0, 0) == pytest.approx(0.1)
    assert opt.lr_at(2, 0) == pytest.approx(0.05)
    assert opt.lr_at(0, 2) == pytest.approx(0.05)


def test_a_loss_callable_trains_a_denoiser():
    x, y = _data(n=64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Unflatten(1, (1, 4, 4)))

    def corrupt(clean, idx, g):
        return clean * (torch.rand(clean.shape, generator=g) > 0.3), clean

    result = fit(model, x, y, epochs=30, batch_size=16, optimiser=Optimiser(lr=0.05), seed=0,
                 transform=corrupt, loss=nn.functional.mse_loss, progress=False)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < 0.5 * first
    assert all(math.isnan(r["accuracy"]) for r in result.history)


def test_fit_saves_the_network_with_its_spec_and_removes_the_checkpoint(tmp_path):
    from flatscape.core.models import from_spec, load, model_spec

    x, y = _data()
    spec = model_spec("f1", in_channels=1, image_size=4, num_classes=2, mean=[0.5], std=[0.25], bias=False)
    torch.manual_seed(0)
    model = from_spec(spec)
    ckpt = tmp_path / "run.ckpt"
    fit(model, x, y, epochs=2, batch_size=16, optimiser=Optimiser(lr=0.1), seed=0, checkpoint_path=ckpt,
        save_to=tmp_path / "model.pt", spec=spec, progress=False)
    assert not ckpt.exists()
    loaded, record = load(tmp_path / "model.pt")
    assert record["spec"] == spec and not loaded.training
    probe = torch.rand(5, 1, 4, 4)
    model.eval()
    assert torch.equal(loaded(probe), model(probe))


def test_fit_refuses_to_save_without_a_spec(tmp_path):
    x, y = _data()
    with pytest.raises(ValueError, match="spec"):
        fit(_model(), x, y, epochs=1, batch_size=16, optimiser=Optimiser(), seed=0, save_to=tmp_path / "m.pt")


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimisers_are_fused_on_cpu_and_step_like_the_per_tensor_loop(name):
    fused_model, loop_model = _model().eval(), _model().eval()  # eval: no dropout draws to tell apart
    x, y = _data()
    opt = Optimiser(name=name, lr=0.01).build(fused_model.parameters())
    assert opt.defaults["fused"] is True
    kwargs = {"lr": 0.01, "momentum": 0.9} if name == "sgd" else {"lr": 0.01}
    loop = (torch.optim.SGD if name == "sgd" else torch.optim.Adam)(loop_model.parameters(), foreach=False, **kwargs)
    for model, o in ((fused_model, opt), (loop_model, loop)):
        for _ in range(3):
            o.zero_grad()
            nn.functional.cross_entropy(model(x.float() / 255), y).backward()
            o.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(fused_model.parameters(), _model().parameters()))  # it moved
