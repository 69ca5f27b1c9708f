import numpy as np
import pytest
import torch

from flatscape.core.encoders import observation_mask, partial_observation, pce_encode, pce_encode_video, pce_mask


def _images(n=5, c=3, h=8, w=6, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 0.5  # no zeros


@pytest.mark.parametrize("ratio", [1.0, 0.9, 0.5, 0.125, 0.01])
def test_partial_observation_keeps_exact_pixel_count(ratio):
    x = _images()
    y, mask, _ = partial_observation(x, ratio, seed=3, return_mask=True)
    expected = max(1, round(ratio * 8 * 6))
    assert mask.shape == (5, 8, 6)
    assert (mask.flatten(1).sum(1) == expected).all()
    assert ((y != 0).flatten(2).any(1).sum(1) == expected).all()


def test_partial_observation_shares_locations_across_channels():
    y = partial_observation(_images(), 0.3, seed=1)
    nonzero = y != 0
    assert (nonzero == nonzero[:, :1]).all()


def test_partial_observation_is_deterministic_in_seed_and_index():
    x = _images(n=10)
    a = partial_observation(x, 0.4, seed=7)
    assert torch.equal(a, partial_observation(x, 0.4, seed=7))
    assert not torch.equal(a, partial_observation(x, 0.4, seed=8))
    # image i's mask depends on its data-set index, not on how the set is chunked
    tail = partial_observation(x[6:], 0.4, seed=7, index_offset=6)
    assert torch.equal(a[6:], tail)
    # different images get different masks
    masks, _ = observation_mask(10, 8, 6, 0.4, seed=7)
    assert len({m.tobytes() for m in masks}) == 10


def test_partial_observation_accepts_numpy_and_matches_torch():
    x = _images()
    y_np = partial_observation(x.numpy(), 0.5, seed=2)
    assert isinstance(y_np, np.ndarray) and y_np.dtype == np.float32
    np.testing.assert_array_equal(y_np, partial_observation(x, 0.5, seed=2).numpy())


def test_partial_observation_keeps_uint8_dtype_and_values():
    x = torch.randint(1, 255, (3, 1, 4, 4), dtype=torch.uint8)
    y, mask, _ = partial_observation(x, 0.5, seed=0, return_mask=True)
    assert y.dtype == torch.uint8
    assert torch.equal(y[:, 0][mask], x[:, 0][mask])
    assert (y[:, 0][~mask] == 0).all()


def test_random_mode_draws_ratio_per_image_in_unit_interval():
    masks, ratios = observation_mask(400, 8, 8, "random", seed=0)
    assert ((ratios > 0) & (ratios <= 1)).all()
    assert 0.4 < ratios.mean() < 0.6  # uniform on (0, 1]
    counts = masks.reshape(400, -1).sum(1)
    np.testing.assert_array_equal(counts, np.maximum(1, np.rint(ratios * 64)))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), "half"])
def test_bad_ratio_is_rejected(bad):
    with pytest.raises(ValueError, match="ratio"):
        partial_observation(_images(), bad, seed=0)


def test_bad_ratio_type_and_shape_are_rejected():
    with pytest.raises(TypeError, match="ratio"):
        partial_observation(_images(), True, seed=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        partial_observation(torch.zeros(4, 4), 0.5, seed=0)


def test_pce_closed_form_on_constant_video():
    t, h, w, value = 10, 6, 7, 3.0
    video = torch.full((t, h, w), value)
    coded, mask = pce_encode(video, 0.5, exposure=4, seed=1, return_mask=True)
    active = mask.any(0)
    assert int(active.sum()) == round(0.5 * h * w)
    assert torch.allclose(coded[active], torch.tensor(value * 4))
    assert (coded[~active] == 0).all()


def test_pce_window_is_contiguous_and_inside_clip():
    mask = pce_mask(12, 5, 5, 1.0, exposure=5, seed=3)
    per_pixel = mask.reshape(12, -1)
    assert (per_pixel.sum(0) == 5).all()  # fraction 1.0: every pixel active
    for column in per_pixel.T:
        on = np.flatnonzero(column)
        assert on[-1] - on[0] == 4  # contiguous window of `exposure` frames
    starts = per_pixel.argmax(0)
    assert starts.min() >= 0 and starts.max() <= 12 - 5
    assert len(np.unique(starts)) > 1  # start times are random, not fixed


def test_pce_matches_definition_on_random_video():
    video = np.random.default_rng(0).random((8, 4, 4)).astype(np.float32)
    coded, mask = pce_encode(video, 0.25, exposure=3, seed=5, return_mask=True)
    np.testing.assert_allclose(coded, (mask * video).sum(0), rtol=1e-6)
    assert torch.allclose(pce_encode(torch.from_numpy(video), 0.25, exposure=3, seed=5), torch.from_numpy(coded))


def test_pce_clips_get_independent_masks():
    frames = np.ones((12, 6, 6), np.float32)
    coded = pce_encode_video(frames, 0.5, frames_per_code=4, exposure=2, seed=0)
    assert coded.shape == (3, 6, 6)
    assert not np.array_equal(coded[0] > 0, coded[1] > 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fraction": 0.5, "exposure": 11}, "longer than the clip"),
        ({"fraction": 0.5, "exposure": 0}, "exposure"),
        ({"fraction": 0.0, "exposure": 2}, "fraction"),
        ({"fraction": 1.2, "exposure": 2}, "fraction"),
        ({"fraction": "random", "exposure": 2}, "fraction"),
    ],
)
def test_pce_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pce_encode(torch.zeros(10, 4, 4), kwargs["fraction"], exposure=kwargs["exposure"], seed=0)


def test_pce_rejects_non_video():
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        pce_encode(torch.zeros(2, 3, 4, 4), 0.5, exposure=1, seed=0)
