"""Metrics: ssim-structure (eq. 19-22), mse, mse-scaled, windowed ssim and psnr — analytic answers."""

import numpy as np
import pytest
from edstomo import plugins
from edstomo.data import CompositionMaps, Volume
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

images = arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.floats(-100, 100))


def structure(**kwargs):
    return plugins.metric("ssim-structure")(**kwargs)


@settings(max_examples=50, deadline=None)
@given(x=images, a=st.floats(0.01, 100), b=st.floats(-100, 100), sign=st.sampled_from([1, -1]))
def test_structure_of_an_affine_copy_is_its_sign(x, a, b, sign):
    assume(np.std(x) > 1e-3)
    assert structure()(sign * a * x + b, x) == pytest.approx(sign, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(x=images, seed=st.integers(0, 1000))
def test_structure_is_the_correlation_coefficient(x, seed):
    assume(np.std(x) > 1e-3)
    y = np.random.default_rng(seed).normal(size=x.shape)
    value = structure()(x, y)
    assert value == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-9)
    assert -1 - 1e-12 <= value <= 1 + 1e-12
    assert structure()(y, x) == pytest.approx(value, abs=1e-12)


def test_structure_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    # deviations (-1.5,-0.5,0.5,1.5)·(-1.5,0.5,-0.5,1.5) = 4, |x'|² = |y'|² = 5
    assert structure()(x, y) == pytest.approx(0.8)
    # with C > 0: (σ_xy + C)/(σ_x σ_y + C) with σ_xy = 4/3, σ_x σ_y = 5/3
    assert structure(c=1.0)(x, y) == pytest.approx((4 / 3 + 1) / (5 / 3 + 1))


def test_structure_of_a_constant_image_needs_c():
    with pytest.raises(ValueError, match="estimate: the image is constant"):
        structure()(np.ones((4, 4)), np.arange(16.0).reshape(4, 4))
    with pytest.raises(ValueError, match="reference: the image is constant"):
        structure()(np.arange(16.0).reshape(4, 4), np.ones((4, 4)))
    assert structure(c=0.5)(np.ones((4, 4)), np.ones((4, 4))) == 1.0
    with pytest.raises(ValueError, match="'c' = -1.*>= 0"):
        structure(c=-1)


@settings(max_examples=50, deadline=None)
@given(x=images, a=st.floats(0.01, 100), sign=st.sampled_from([1, -1]))
def test_mse_scaled_of_a_scaled_copy_is_zero(x, a, sign):
    assume(np.any(x != 0))
    a *= sign
    assert plugins.metric("mse-scaled")()(a * x, x) == pytest.approx(0.0, abs=1e-9 * max(1.0, np.mean(x**2)))


def test_mse_scaled_of_three_x_is_zero():
    x = np.linspace(0, 1, 50).reshape(5, 10)
    assert plugins.metric("mse-scaled")()(3 * x, x) == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=50, deadline=None)
@given(x=images, seed=st.integers(0, 1000))
def test_mse_scaled_is_the_closed_form_minimum(x, seed):
    assume(np.sum(x**2) > 1e-6)
    y = np.random.default_rng(seed).normal(size=x.shape)
    value = plugins.metric("mse-scaled")()(x, y)
    closed = np.mean(y**2) - np.sum(x * y) ** 2 / (np.sum(x**2) * x.size)
    assert value == pytest.approx(closed, rel=1e-7, abs=1e-12)
    # no other scale does better (the minimum over a), and the unscaled MSE is not lower
    for a in (0.5, 0.9, 1.1, 2.0):
        best = np.sum(x * y) / np.sum(x**2)
        assert value <= np.mean((a * best * x - y) ** 2) + 1e-12
    assert value <= plugins.metric("mse")()(x, y) + 1e-12


def test_mse_by_hand():
    x = np.zeros((3, 3))
    assert plugins.metric("mse")()(x + 0.5, x) == pytest.approx(0.25)
    assert plugins.metric("mse-scaled")()(np.zeros((2, 2)), np.ones((2, 2))) == 1.0  # best scale of 0 is 0
    assert not plugins.metric("mse").higher_is_better and plugins.metric("ssim-structure").higher_is_better


def test_psnr_by_hand():
    x = np.zeros((16, 16))
    psnr = plugins.metric("psnr")(data_range=1.0)
    assert psnr(x + 0.1, x) == pytest.approx(10 * np.log10(1 / 0.01))
    assert psnr(x, x) == float("inf")


def test_windowed_ssim():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 32))
    ssim = plugins.metric("ssim")(data_range=1.0)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x + rng.normal(0, 0.3, x.shape), x) < 0.8
    # (nz, nx, slices): the mean of the slices' values
    volume = np.stack([x, x[::-1]], axis=-1)
    noisy = volume + rng.normal(0, 0.1, volume.shape)
    assert ssim(noisy, volume) == pytest.approx(np.mean([ssim(noisy[..., k], volume[..., k]) for k in range(2)]))


def test_data_range_defaults_to_the_reference_range_and_is_checked():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2, size=(16, 16))
    y = x + rng.normal(0, 0.1, x.shape)
    span = x.max() - x.min()
    assert plugins.metric("psnr")()(y, x) == pytest.approx(plugins.metric("psnr")(data_range=span)(y, x))
    assert plugins.metric("ssim")()(y, x) == pytest.approx(plugins.metric("ssim")(data_range=span)(y, x))
    with pytest.raises(ValueError, match="'data_range' = 0.*> 0"):
        plugins.metric("ssim")(data_range=0)
    with pytest.raises(ValueError, match="reference: the image is constant"):
        plugins.metric("psnr")()(y, np.ones_like(y))


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"estimate: shape \(2, 3\)"):
        plugins.metric("mse")()(np.zeros((2, 3)), np.zeros((3, 2)))


def test_metrics_on_maps_give_one_value_per_element(paper_truth):
    volume = Volume(
        data=np.stack([2.0 * paper_truth.fraction("Ag"), 5.0 * paper_truth.fraction("Au")]),
        channels=["Ag_La", "Au_Ma"],
        pixel_size="1.5 nm",
    )
    values = plugins.metric("ssim-structure")()(volume, paper_truth)
    assert values == pytest.approx({"Ag": 1.0, "Au": 1.0})
    assert plugins.metric("mse-scaled")()(volume, paper_truth) == pytest.approx({"Ag": 0.0, "Au": 0.0}, abs=1e-15)
    same = CompositionMaps(paper_truth.weight_fractions, paper_truth.elements, "1.5 nm")
    assert plugins.metric("mse")()(same, paper_truth) == {"Ag": 0.0, "Au": 0.0}
