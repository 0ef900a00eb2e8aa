"""Preprocessing: Gaussian filter of sinograms, tilt normalisation, response ratios (eq. 15)."""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
from edstomo.data import TiltSeries
from edstomo.preprocessing import ResponseRatios, gaussian_filter, normalise_tilts, response_ratios
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

LINES = ["Ag_La", "Au_Ma"]


def make_series(data: np.ndarray, channels: list[str]) -> TiltSeries:
    angles = et.ureg.Quantity(np.linspace(-60.0, 60.0, data.shape[1]), "deg")
    return TiltSeries(data, channels, angles, et.ureg.Quantity(1.5, "nm"))


@pytest.fixture(scope="module")
def random_series() -> TiltSeries:
    rng = np.random.default_rng(1)
    return make_series(rng.poisson(20.0, size=(3, 9, 14, 4)).astype(float), ["HAADF", *LINES])


@pytest.fixture(scope="module")
def paper():
    """The paper's phantom experiment: forward model, noise-free and Poisson (seed 0) series."""
    exp = yuan2020_phantom_experiment()
    factors = et.plugins.physics("table")().compute(exp)
    truth = et.plugins.phantom("core-shell")().generate(exp)
    forward = et.plugins.forward("thin-film")(exp, factors)
    return forward, forward.simulate(truth, noise=None), forward.simulate(truth, noise="poisson", seed=0)


# ------------------------------------------------------------------ Gaussian filter
def test_sinogram_filter_is_scipy_on_each_tilt_by_position_image(random_series):
    out = gaussian_filter(random_series, 0.8)
    for c, name in enumerate(random_series.channels):
        for s in range(random_series.n_slices):
            sinogram = random_series.data[c, :, :, s]
            expected = scipy.ndimage.gaussian_filter(sinogram, 0.8) if name != "HAADF" else sinogram
            np.testing.assert_allclose(out.data[c, :, :, s], expected, rtol=1e-12, atol=1e-12)


def test_projection_filter_smooths_positions_by_slices_for_each_tilt(random_series):
    out = gaussian_filter(random_series, (0.5, 1.5), channels=["HAADF"], axes="projection")
    for t in range(random_series.n_tilts):
        expected = scipy.ndimage.gaussian_filter(random_series.data[0, t], (0.5, 1.5))
        np.testing.assert_allclose(out.data[0, t], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out.data[1:], random_series.data[1:])


def test_filter_conserves_total_signal_and_leaves_input_alone(random_series):
    before = random_series.data.copy()
    out = gaussian_filter(random_series, 1.3)
    np.testing.assert_array_equal(random_series.data, before)
    # reflect boundaries make the filter a symmetric averaging operator: sums are kept.
    np.testing.assert_allclose(out.data.sum(axis=(1, 2, 3)), before.sum(axis=(1, 2, 3)), rtol=1e-12)
    assert out.data.min() >= 0
    assert out.provenance[-1]["action"] == "gaussian_filter"
    assert out.provenance[-1]["parameters"]["sigma"] == [1.3, 1.3]
    assert out.provenance[-1]["parameters"]["channels"] == LINES
    assert len(out.provenance) == len(random_series.provenance) + 1


def test_zero_sigma_is_the_identity(random_series):
    np.testing.assert_array_equal(gaussian_filter(random_series, 0.0).data, random_series.data)


def test_impulse_response_has_the_requested_width():
    data = np.zeros((1, 41, 41, 1))
    data[0, 20, 20, 0] = 1.0
    out = gaussian_filter(make_series(data, ["Ag_La"]), (2.0, 3.0)).data[0, :, :, 0]
    tilts, positions = np.mgrid[-20:21, -20:21]
    assert out.sum() == pytest.approx(1.0)
    assert np.sqrt((out * tilts**2).sum()) == pytest.approx(2.0, rel=1e-3)
    assert np.sqrt((out * positions**2).sum()) == pytest.approx(3.0, rel=1e-3)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), "0.8", (1.0, -1.0), (1.0, 2.0, 3.0), True])
def test_bad_sigma_is_an_error(random_series, sigma):
    with pytest.raises(ValueError, match="sigma"):
        gaussian_filter(random_series, sigma)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"axes": "volume"}, "axes"),
        ({"channels": ["Cu_Ka"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": "Ag_La"}, "channels"),
        ({"mode": "periodic"}, "mode"),
        ({"truncate": 0}, "truncate"),
    ],
)
def test_bad_filter_options_are_errors(random_series, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaussian_filter(random_series, 0.8, **kwargs)


def test_filter_of_a_haadf_only_series_needs_named_channels():
    series = make_series(np.ones((1, 3, 4, 1)), ["HAADF"])
    with pytest.raises(ValueError, match="no EDS line"):
        gaussian_filter(series, 0.8)
    assert gaussian_filter(series, 0.8, channels=["HAADF"]).shape == series.shape


def test_filter_needs_a_tilt_series():
    with pytest.raises(TypeError, match="TiltSeries"):
        gaussian_filter(np.ones((1, 3, 4, 1)), 0.8)


# ------------------------------------------------------------------ normalisation
@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.2, 5.0), min_size=5, max_size=5), st.integers(0, 2**16))
def test_normalisation_undoes_per_tilt_dose_drift(drift, seed):
    rng = np.random.default_rng(seed)
    base = rng.random((2, 1, 6, 3)) + 0.1
    base = np.repeat(base, 5, axis=1)  # the same projection at every tilt, as for a round object
    drifted = base * np.asarray(drift)[None, :, None, None]
    out = normalise_tilts(make_series(drifted, ["HAADF", "Ag_La"]))
    totals = out.data.sum(axis=(2, 3))
    np.testing.assert_allclose(totals, totals[:, :1] * np.ones((1, 5)), rtol=1e-10)
    np.testing.assert_allclose(totals.sum(axis=1), drifted.sum(axis=(1, 2, 3)), rtol=1e-10)
    # the drift is removed up to one global factor per channel
    ratio = out.data / base
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :1] * np.ones_like(ratio), rtol=1e-10)
    factors = out.provenance[-1]["parameters"]["factors"]
    np.testing.assert_allclose(np.asarray(factors["Ag_La"]) * drift, np.mean(drift), rtol=1e-10)


def test_normalisation_of_selected_channels_only(random_series):
    out = normalise_tilts(random_series, channels=["Au_Ma"])
    np.testing.assert_array_equal(out.data[:2], random_series.data[:2])
    totals = out.data[2].sum(axis=(1, 2))
    np.testing.assert_allclose(totals, totals.mean(), rtol=1e-12)


def test_normalisation_of_a_tilt_without_signal_is_an_error():
    data = np.ones((1, 4, 3, 2))
    data[0, 2] = 0.0
    with pytest.raises(ValueError, match=r"'Ag_La' has no signal at tilt\(s\) \[20.0\] deg"):
        normalise_tilts(make_series(data, ["Ag_La"]))


# ------------------------------------------------------------------ response ratios
@settings(max_examples=30, deadline=None)
@given(st.floats(0.1, 2000.0), st.floats(0.1, 2000.0), st.integers(0, 2**16))
def test_exact_ratios_are_recovered(r1, r2, seed):
    rng = np.random.default_rng(seed)
    eds = rng.random((2, 5, 7, 2))
    data = np.concatenate([(r1 * eds[0] + r2 * eds[1])[None], eds])
    fit = response_ratios(make_series(data, ["HAADF", *LINES]))
    np.testing.assert_allclose(fit.as_array(), [r1, r2], rtol=1e-8)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-10)
    assert fit.lines == LINES


def test_fit_is_the_nonnegative_least_squares_solution():
    rng = np.random.default_rng(3)
    eds = rng.random((2, 6, 8, 3))
    haadf = 5.0 * eds[0] - 2.0 * eds[1] + 2.0  # non-negative, but the best unconstrained r_Au is negative
    fit = response_ratios(make_series(np.concatenate([haadf[None], eds]), ["HAADF", *LINES]))
    design = eds.reshape(2, -1).T
    expected, norm = scipy.optimize.nnls(design, haadf.ravel())
    np.testing.assert_allclose(fit.as_array(), expected, rtol=1e-9, atol=1e-12)
    assert fit["Au_Ma"] == 0.0
    assert fit.residual_norm == pytest.approx(norm, rel=1e-9)
    ss_tot = ((haadf - haadf.mean()) ** 2).sum()
    assert fit.r_squared == pytest.approx(1 - norm**2 / ss_tot, rel=1e-9)


def test_paper_phantom_noise_free_gives_eq_16(paper):
    forward, clean, _ = paper
    scales = forward.scales()  # n f_A and D_H N_A z_A per unit mass thickness
    fit = response_ratios(clean)
    for line in LINES:
        assert fit[line] == pytest.approx(scales[f"HAADF:{line}"] / scales[line], rel=1e-8)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)


def test_paper_phantom_with_noise_has_high_r_squared(paper):
    forward, _, noisy = paper
    scales = forward.scales()
    for series in (noisy, gaussian_filter(noisy, 0.8)):
        fit = response_ratios(series)
        assert fit.r_squared > 0.98
        for line in LINES:
            assert fit[line] == pytest.approx(scales[f"HAADF:{line}"] / scales[line], rel=0.05)
        assert fit.record["action"] == "response_ratios"


def test_response_ratio_errors(random_series):
    with pytest.raises(ValueError, match="'HAADF' channel"):
        response_ratios(random_series.select(LINES))
    with pytest.raises(ValueError, match="no EDS line"):
        response_ratios(random_series.select(["HAADF"]))
    with pytest.raises(ValueError, match="cannot be fitted against itself"):
        response_ratios(random_series, lines=["HAADF", "Ag_La"])
    with pytest.raises(ValueError, match="channels"):
        response_ratios(random_series, lines=["Cu_Ka"])
    blank = random_series.data.copy()
    blank[2] = 0.0
    with pytest.raises(ValueError, match=r"\['Au_Ma'\] have no signal"):
        response_ratios(random_series.replace(data=blank))
    flat = random_series.data.copy()
    flat[0] = 7.0
    with pytest.raises(ValueError, match="constant"):
        response_ratios(random_series.replace(data=flat))


def test_ratio_lookup_names_known_lines():
    fit = ResponseRatios({"Ag_La": 2.0}, 0.9, 1.0, {})
    with pytest.raises(KeyError, match="Ag_La"):
        fit["Au_Ma"]


def test_a_repeated_line_shares_its_ratio_and_the_fit_stays_exact():
    """Collinear lines make the normal equations singular; the fit still reproduces the HAADF exactly."""
    eds = np.random.default_rng(1).random((2, 5, 7, 3))
    eds = np.concatenate([eds, eds[:1]])  # the third line repeats the first
    series = make_series(np.concatenate([(2.0 * eds[0] + 3.0 * eds[1])[None], eds]), ["HAADF", *LINES, "Cu_Ka"])
    fit = response_ratios(series)
    assert fit[LINES[0]] + fit["Cu_Ka"] == pytest.approx(2.0, rel=1e-9) and fit[LINES[1]] == pytest.approx(3.0)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
