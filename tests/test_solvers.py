"""Solvers ``sirt`` and ``hebt-sirt``: equivalence with textbook SIRT on explicit matrices, convergence, options."""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
import scipy.sparse as sp
from edstomo.algorithms import IterationState
from edstomo.data import TiltSeries, Volume
from edstomo.errors import InputError, OptionError
from edstomo.operators import ParallelBeamProjector
from edstomo.preprocessing import gaussian_filter, response_ratios
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

LINES = ["Ag_La", "Au_Ma"]
RATIOS = {"Ag_La": 2.0, "Au_Ma": 5.0}
N, TILTS, SLICES = 14, 9, 3
ANGLES_DEG = np.linspace(-70.0, 70.0, TILTS)

sirt = et.plugins.solver("sirt")
hebt = et.plugins.solver("hebt-sirt")


def small_projector() -> ParallelBeamProjector:
    return ParallelBeamProjector(np.deg2rad(ANGLES_DEG), (N, N), dtype="float64")


def as_series(eds: np.ndarray, haadf: np.ndarray | None = None) -> TiltSeries:
    """A tilt series from EDS sinograms (tilts, positions, lines, slices) and a HAADF one (tilts, positions, slices)."""
    channels = np.moveaxis(eds, 2, 0)
    names = list(LINES[: eds.shape[2]])
    if haadf is not None:
        channels = np.concatenate([haadf[None], channels])
        names = ["HAADF", *names]
    angles = et.ureg.Quantity(ANGLES_DEG, "deg")
    return TiltSeries(channels, names, angles, et.ureg.Quantity(1.0, "nm"))


@pytest.fixture(scope="module")
def small():
    """Random non-negative maps in a disk, their exact EDS sinograms, HAADF = Σ r_A I_A, plus noise."""
    rng = np.random.default_rng(7)
    z, x = np.mgrid[:N, :N] - (N - 1) / 2
    disk = (z**2 + x**2 <= (0.4 * N) ** 2)[:, :, None, None]
    maps = rng.random((N, N, len(LINES), SLICES)) * disk
    eds = small_projector().forward(maps)
    eds = rng.poisson(50.0 * eds) / 50.0  # inconsistent data: no exact solution
    haadf = sum(RATIOS[line] * eds[:, :, k] for k, line in enumerate(LINES))
    haadf = haadf * rng.uniform(0.9, 1.1, size=haadf.shape)
    return maps, as_series(eds, haadf)


@pytest.fixture(scope="module")
def paper():
    exp = yuan2020_phantom_experiment()
    factors = et.plugins.physics("table")().compute(exp)
    truth = et.plugins.phantom("core-shell")().generate(exp)
    forward = et.plugins.forward("thin-film")(exp, factors)
    scales = forward.scales()
    length = exp.scan.pixel_size.m_as("cm")
    # The exact EDS-only solution: X_A = n f_A C_A ρ × pixel length (counts per pixel).
    exact = np.stack([scales[line] * truth.partial_density()[k] * length for k, line in enumerate(exp.lines)])
    clean = forward.simulate(truth, noise=None)
    noisy = forward.simulate(truth, noise="poisson", seed=0)
    return exact, clean, noisy


def textbook_sirt(matrix: sp.sparray, b: np.ndarray, iterations: int, relaxation: float = 1.0) -> np.ndarray:
    """x ← max(0, x + λ C Aᵀ R (b − A x)) on an explicit matrix, columns of b solved independently."""
    rows = np.asarray(matrix.sum(axis=1)).ravel()
    cols = np.asarray(matrix.sum(axis=0)).ravel()
    r = np.divide(1.0, rows, out=np.zeros_like(rows), where=rows > 0)[:, None]
    c = np.divide(1.0, cols, out=np.zeros_like(cols), where=cols > 0)[:, None]
    x = np.zeros((matrix.shape[1], b.shape[1]))
    for _ in range(iterations):
        x = np.maximum(0.0, x + relaxation * c * (matrix.T @ (r * (b - matrix @ x))))
    return x


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ------------------------------------------------------------------ equivalence with explicit matrices
def test_sirt_equals_textbook_sirt_on_the_system_matrix(small):
    _, series = small
    matrix = small_projector().matrix
    got = sirt(iterations=25, relaxation=1.3, dtype="float64").solve(series)
    for k, line in enumerate(LINES):
        b = series.channel(line).reshape(TILTS * N, SLICES)
        expected = textbook_sirt(matrix, b, 25, 1.3).reshape(N, N, SLICES)
        assert relative(got.data[k], expected) < 1e-10


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 0.95])
def test_hebt_equals_sirt_on_the_explicit_block_matrix(small, alpha):
    _, series = small
    w = small_projector().matrix
    k = len(LINES)
    blocks = [[(1 - alpha) * w if j == i else None for j in range(k)] for i in range(k)]
    blocks.append([alpha * w] * k)
    stacked = sp.bmat(blocks, format="csr")
    flat = {c: series.channel(c).reshape(TILTS * N, SLICES) for c in series.channels}
    b = np.concatenate([(1 - alpha) * RATIOS[line] * flat[line] for line in LINES] + [alpha * flat["HAADF"]])
    expected = textbook_sirt(stacked, b, 30).reshape(k, N, N, SLICES)

    residuals = []
    got = hebt(alpha=alpha, ratios=RATIOS, iterations=30, dtype="float64").solve(
        series, callbacks=lambda state: residuals.append(state.residual)
    )
    assert relative(got.data, expected) < 1e-6
    # the reported residual is that of the stacked system for the iteration's input estimate
    before_last = textbook_sirt(stacked, b, 29)
    assert residuals[-1] == pytest.approx(np.linalg.norm(b - stacked @ before_last), rel=1e-9)


def test_hebt_at_alpha_zero_is_sirt_on_scaled_eds(small):
    _, series = small
    scaled = series.data.copy()
    for line in LINES:
        scaled[series.channels.index(line)] *= RATIOS[line]
    expected = sirt(iterations=40, dtype="float64").solve(series.replace(data=scaled))
    got = hebt(alpha=0.0, ratios=RATIOS, iterations=40, dtype="float64").solve(series)
    assert relative(got.data, expected.data) < 1e-12


def test_hebt_estimates_ratios_when_not_given(small):
    _, series = small
    fit = response_ratios(series)
    got = hebt(alpha=0.5, iterations=10, dtype="float64").solve(series)
    given_ratios = hebt(alpha=0.5, ratios=fit, iterations=10, dtype="float64").solve(series)
    np.testing.assert_allclose(got.data, given_ratios.data, rtol=1e-12)
    params = got.provenance[-1]["parameters"]
    assert params["ratios_estimated"] is True
    assert params["r_squared"] == pytest.approx(fit.r_squared)
    assert params["ratios_used"] == pytest.approx(fit.ratios)
    assert got.unit == "electrons/pixel"


# ------------------------------------------------------------------ convergence and behaviour
def test_sirt_converges_on_noise_free_phantom_data(paper):
    exact, clean, _ = paper
    weights = ParallelBeamProjector(clean.angles.m_as("rad"), (97, 97)).col_sums().reshape(97, 97, 1)
    residuals, errors, weighted = [], [], []

    def record(state: IterationState) -> None:
        residuals.append(state.residual)
        diff = state.estimate - exact
        errors.append(np.linalg.norm(diff))
        weighted.append(np.sqrt((diff**2 * weights).sum()))

    sirt(iterations=150, dtype="float64").solve(clean, callbacks=record)
    assert np.all(np.diff(residuals) < 0)
    assert np.all(np.diff(errors) < 0)
    # SIRT with a convex constraint is Fejér monotone in the column-sum-weighted norm (consistent data)
    assert np.all(np.diff(weighted) <= 1e-9 * weighted[0])
    assert residuals[-1] < 0.01 * residuals[0]
    assert errors[-1] < 0.12 * np.linalg.norm(exact)


def test_hebt_maps_are_on_the_haadf_scale(paper):
    exact, clean, _ = paper
    fit = response_ratios(clean)
    volume = hebt(alpha=0.5, iterations=150, dtype="float64").solve(clean)
    scaled_truth = exact * fit.as_array()[:, None, None, None]  # r_A X_A = D_H N_A z_A C_A ρ × pixel
    assert relative(volume.data, scaled_truth) < 0.15
    assert relative(volume.data, scaled_truth) < relative(
        hebt(alpha=0.5, iterations=30, dtype="float64").solve(clean).data, scaled_truth
    )


def test_nonnegativity_holds_at_every_iteration(paper):
    _, _, noisy = paper
    minima = []
    volume = sirt(iterations=30).solve(noisy, callbacks=lambda s: minima.append(float(s.estimate.min())))
    assert min(minima) == 0.0 and volume.data.min() == 0.0
    unconstrained = sirt(iterations=30, nonnegativity=False).solve(noisy)
    assert unconstrained.data.min() < 0  # the constraint is active on noisy data
    joint = hebt(iterations=30).solve(noisy)
    assert joint.data.min() == 0.0


def test_batch_of_slices_equals_slice_by_slice(small):
    _, series = small
    for solver in (sirt(iterations=15), hebt(alpha=0.6, ratios=RATIOS, iterations=15)):
        together = solver.solve(series).data
        for s in range(SLICES):
            alone = solver.solve(series.replace(data=series.data[..., s : s + 1])).data
            np.testing.assert_allclose(together[..., s : s + 1], alone, rtol=1e-6, atol=1e-6 * alone.max())


def test_callback_sees_every_iteration_and_can_stop_early(small):
    _, series = small
    seen = []

    def stop_at_seven(state: IterationState) -> bool:
        seen.append(state.iteration)
        assert state.estimate.shape == (len(LINES), N, N, SLICES)
        assert state.channels == LINES
        return state.iteration == 7

    stopped = sirt(iterations=50, dtype="float64").solve(series, callbacks=stop_at_seven)
    assert seen == list(range(1, 8))
    assert stopped.provenance[-1]["parameters"]["iterations_run"] == 7
    np.testing.assert_array_equal(stopped.data, sirt(iterations=7, dtype="float64").solve(series).data)
    full = []
    sirt(iterations=5).solve(series, callbacks=lambda s: full.append(s.iteration))
    assert full == [1, 2, 3, 4, 5]


def test_restart_from_an_initial_volume_continues_the_iteration(small):
    _, series = small
    for solver in (sirt, hebt):
        options = {"ratios": RATIOS} if solver is hebt else {}
        first = solver(iterations=8, dtype="float64", **options).solve(series)
        resumed = solver(iterations=12, dtype="float64", **options).solve(series, initial=first)
        from_array = solver(iterations=12, dtype="float64", **options).solve(series, initial=first.data)
        straight = solver(iterations=20, dtype="float64", **options).solve(series)
        np.testing.assert_allclose(resumed.data, straight.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(resumed.data, from_array.data)


def test_first_iteration_scales_with_relaxation(small):
    _, series = small
    one = sirt(iterations=1, dtype="float64").solve(series).data
    half = sirt(iterations=1, relaxation=0.5, dtype="float64").solve(series).data
    np.testing.assert_allclose(half, 0.5 * one, rtol=1e-12)


@settings(max_examples=10, deadline=None)
@given(st.floats(1e-3, 1e3))
def test_reconstruction_scales_with_the_data(scale):
    rng = np.random.default_rng(5)
    eds = rng.random((TILTS, N, 2, 1))
    series = as_series(eds, RATIOS["Ag_La"] * eds[:, :, 0] + RATIOS["Au_Ma"] * eds[:, :, 1])
    scaled = series.replace(data=series.data * scale)
    for solver in (sirt(iterations=6, dtype="float64"), hebt(alpha=0.7, ratios=RATIOS, iterations=6, dtype="float64")):
        np.testing.assert_allclose(solver.solve(scaled).data, scale * solver.solve(series).data, rtol=1e-9, atol=0)


def test_float32_and_float64_agree(paper):
    _, _, noisy = paper
    data = gaussian_filter(noisy, 0.8)
    for solver, options in ((sirt, {}), (hebt, {"alpha": 0.8})):
        single = solver(iterations=60, **options).solve(data)
        double = solver(iterations=60, dtype="float64", **options).solve(data)
        assert single.data.dtype == np.float32 and double.data.dtype == np.float64
        assert relative(single.data, double.data) < 1e-4


def test_haadf_alone_can_be_reconstructed(paper):
    _, clean, _ = paper
    volume = sirt(iterations=5, channels=["HAADF"]).solve(clean)
    assert volume.channels == ["HAADF"] and volume.shape == (1, 97, 97, 1)
    assert volume.unit == "electrons/pixel"
    with pytest.raises(ValueError, match="HAADF"):
        sirt().solve(clean.select(["HAADF"]))


def test_result_carries_provenance_and_geometry(small):
    _, series = small
    volume = sirt(iterations=3, channels=["Au_Ma"]).solve(series)
    assert isinstance(volume, Volume)
    assert volume.channels == ["Au_Ma"] and volume.shape == (1, N, N, SLICES)
    assert volume.pixel_size == series.pixel_size
    step = volume.provenance[-1]
    assert step["plugin"] == "sirt" and step["action"] == "reconstruct"
    assert step["parameters"]["iterations"] == 3 and step["parameters"]["channels"] == ["Au_Ma"]
    assert volume.provenance[:-1] == series.provenance


def test_progress_reports(small):
    _, series = small
    calls = []
    sirt(iterations=4).solve(series, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sirt(iterations=2).solve(series, progress=True).shape == (2, N, N, SLICES)


def test_zero_iterations_return_the_initial_estimate(small):
    _, series = small
    assert not sirt(iterations=0).solve(series).data.any()
    np.testing.assert_array_equal(sirt(iterations=0).solve(series, initial=2.5).data, 2.5)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"iterations": -1}, "iterations"),
        ({"iterations": 2.5}, "iterations"),
        ({"relaxation": 0.0}, r"'relaxation'.*> 0, < 2"),
        ({"relaxation": 2.0}, r"'relaxation'.*> 0, < 2"),
        ({"relaxation": float("nan")}, "relaxation"),
        ({"channels": []}, "channels"),
        ({"channels": "Ag_La"}, "channels"),
        ({"channels": ["Ag_La", "Ag_La"]}, "channels"),
        ({"projector": "siddon"}, "projector"),
        ({"dtype": "float16"}, "dtype"),
        ({"nonnegativity": "yes"}, "nonnegativity"),
        ({"progress": True}, "'progress'.*not an option of solver 'sirt'"),
        ({"initial": "zeros"}, "'initial'.*not an option"),
    ],
)
def test_bad_options_are_errors(options, match):
    with pytest.raises(OptionError, match=match):
        sirt(**options)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5, float("nan"), True, "0.5"])
def test_alpha_outside_its_range_is_an_error(alpha):
    with pytest.raises(OptionError, match=r"hebt-sirt.*'alpha'.*>= 0, < 1"):
        hebt(alpha=alpha)


def test_bad_data_and_channels_are_errors(small):
    _, series = small
    with pytest.raises(ValueError, match=r"channels: \['Cu_Ka'\] not in the tilt series"):
        sirt(channels=["Cu_Ka"]).solve(series)
    with pytest.raises(InputError, match="TiltSeries"):
        sirt().solve(series.data)
    with pytest.raises(InputError, match="initial: shape"):
        sirt().solve(series, initial=np.zeros((2, N, N, 1)))
    with pytest.raises(InputError, match="initial: volume channels"):
        sirt().solve(series, initial=sirt(iterations=1, channels=["Au_Ma"]).solve(series))
    with pytest.raises(InputError, match="initial"):
        sirt().solve(series, initial=float("inf"))
    with pytest.raises(InputError, match="progress"):
        sirt(iterations=1).solve(series, progress=3)


def test_bad_hebt_input_is_an_error(small):
    _, series = small
    with pytest.raises(ValueError, match="needs a 'HAADF' channel"):
        hebt(ratios=RATIOS).solve(series.select(LINES))
    with pytest.raises(ValueError, match="EDS lines only"):
        hebt(channels=["HAADF", "Ag_La"]).solve(series)
    with pytest.raises(InputError, match=r"ratios: .*missing \['Au_Ma'\]"):
        hebt(ratios={"Ag_La": 2.0}).solve(series)
    with pytest.raises(InputError, match=r"ratios: .*not used \['Cu_Ka'\]"):
        hebt(ratios={**RATIOS, "Cu_Ka": 1.0}).solve(series)
    with pytest.raises(OptionError, match=r"'ratios' = .*expected dict\[str, float \(> 0\)\]"):
        hebt(ratios={"Ag_La": -2.0, "Au_Ma": 1.0})
    with pytest.raises(OptionError, match="ratios.*dict"):
        hebt(ratios=[2.0, 5.0])
    with pytest.raises(InputError, match="no EDS line"):
        hebt().solve(series.select(["HAADF"]))
    unrelated = series.data.copy()
    unrelated[0] = series.data[1] * 3.0  # HAADF explained by Ag alone: the fit gives r_Au = 0
    with pytest.raises(ValueError, match=r"r_A = 0 for \['Au_Ma'\]"):
        hebt().solve(series.replace(data=unrelated))
