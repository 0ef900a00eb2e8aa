"""Poisson-likelihood TV and fused HAADF–EDS reconstruction: proximal maps, PDHG, TV, the two solvers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.optimize
from edstomo.algorithms import PDHG, ProxTerm, TotalVariationTerm, dual_steps, pdhg_kernels
from edstomo.algorithms.proximal import (
    kl_divergence,
    kl_dual_prox,
    kl_prox,
    least_squares_dual_prox,
    project_balls,
    total_variation,
)
from edstomo.data import HAADF
from edstomo.distributed import solve_file
from edstomo.errors import InputError, OptionError
from edstomo.operators import Gradient, Identity, MatrixOperator, projector_for
from edstomo.registry import plugins
from edstomo.testing import dottest, solver_test_series
from edstomo_plugins.solvers.fused import FusedDataTerm, FusedSolver
from edstomo_plugins.solvers.poisson import PoissonTVSolver, count_levels, default_lambda
from hypothesis import given, settings
from hypothesis import strategies as st

# ----------------------------------------------------------------------------------------------- proximal maps
values = st.floats(-50, 50, allow_nan=False)
positives = st.floats(0.01, 20, allow_nan=False)
counts = st.integers(0, 40)


@given(z=values, step=positives, b=counts, beta=st.floats(0, 3))
@settings(max_examples=200, deadline=None)
def test_kl_prox_satisfies_its_optimality_condition(z: float, step: float, b: int, beta: float) -> None:
    """v = prox_{σF}(z) solves v − z + σ(1 − b/(v + β)) = 0 with v + β > 0 (b > 0); for b = 0,
    F(v) = v + β on v ≥ −β, so v = max(z − σ, −β)."""
    v = float(kl_prox(np.array(z), step, np.array(float(b)), beta))
    if b == 0:
        assert v == pytest.approx(max(z - step, -beta), abs=1e-9)
    else:
        assert v + beta > 0
        assert v - z + step * (1 - b / (v + beta)) == pytest.approx(0.0, abs=1e-7 * (1 + abs(z) + b))


@given(z=values, step=positives, b=counts, beta=st.floats(0, 3))
@settings(max_examples=200, deadline=None)
def test_kl_dual_prox_is_moreau_of_the_primal_prox(z: float, step: float, b: int, beta: float) -> None:
    """prox_{σF*}(z) = z − σ prox_{F/σ}(z/σ) (Moreau's identity), and the dual value stays below 1."""
    dual = float(kl_dual_prox(np.array(z), step, np.array(float(b)), beta))
    moreau = z - step * float(kl_prox(np.array(z / step), 1.0 / step, np.array(float(b)), beta))
    assert dual == pytest.approx(moreau, rel=1e-7, abs=1e-7)
    assert dual <= 1.0 and (b == 0 or dual < 1.0)


def test_kl_divergence_known_values() -> None:
    b = np.array([0.0, 2.0, 5.0])
    m = np.array([1.0, 2.0, 2.5])
    expected = 1.0 + 0.0 + (2.5 - 5.0 + 5.0 * np.log(2.0))
    assert kl_divergence(b, m) == pytest.approx(expected)
    assert kl_divergence(b, b) == 0.0
    assert kl_divergence(np.array([1.0]), np.array([0.0])) == float("inf")
    assert kl_divergence(np.array([1.0]), np.array([0.0]), background=1.0) == 0.0


def test_least_squares_dual_prox_matches_a_numerical_minimiser() -> None:
    """prox_{σF*} for F(v) = (w/2)(v − d)²: minimise ½(y − z)² + σ(y²/(2w) + y d) numerically."""
    z, step, d, w = 1.7, 0.6, -0.4, 2.5
    numeric = scipy.optimize.minimize_scalar(lambda y: 0.5 * (y - z) ** 2 + step * (y * y / (2 * w) + y * d)).x
    assert float(least_squares_dual_prox(np.array(z), step, np.array(d), w)) == pytest.approx(numeric, abs=1e-8)


def test_project_balls_per_vector_and_coupled() -> None:
    p = np.array([[3.0, 4.0], [0.3, 0.4]])  # two 2-vectors (axis 1): norms 5 and 0.5
    out = project_balls(p, 1.0, axes=(1,))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4]])  # scaled onto the ball / unchanged inside
    joint = project_balls(p, 1.0, axes=(0, 1))  # one ball over everything: norm √25.25
    np.testing.assert_allclose(joint, p / np.sqrt(25.25))
    np.testing.assert_array_equal(project_balls(p, 0.0, axes=(1,)), 0.0)


def test_total_variation_of_a_step() -> None:
    """A step of height h across a 6 × 8 image has TV = h × 6 (one jump per row); weights scale it."""
    x = np.zeros((6, 8, 2, 1))
    x[:, 4:, 0, 0] = 2.5
    x[:, 4:, 1, 0] = 1.0
    gradient = Gradient((6, 8))
    np.testing.assert_allclose(total_variation(gradient, x)[:, 0], [15.0, 6.0])
    weights = np.array([2.0, 1.0]).reshape(1, 1, 1, 2, 1)
    np.testing.assert_allclose(total_variation(gradient, x, weights)[:, 0], [30.0, 6.0])
    # channel-coupled: one edge, of size √(2.5² + 1²), per row
    assert float(total_variation(gradient, x, coupled=(3,))[0]) == pytest.approx(6 * np.hypot(2.5, 1.0))
    diagonal = np.add.outer(np.arange(5.0), np.arange(5.0))[:, :, None]  # ∇ = (1, 1) inside: isotropic √2
    expected = 16 * np.sqrt(2) + 8 * 1.0  # interior 4×4 pixels, then the last row/column has one difference
    assert float(total_variation(Gradient((5, 5)), diagonal)[0]) == pytest.approx(expected)


def test_dual_steps_bound() -> None:
    tau = np.array([0.5, 2.0])
    sigmas = dual_steps(tau, [3.0, 1.5])
    total = sum(s * tau * n**2 for s, n in zip(sigmas, [3.0, 1.5]))
    np.testing.assert_allclose(total, 0.99)
    with pytest.raises(InputError, match="norms"):
        dual_steps(1.0, [0.0])
    with pytest.raises(InputError, match="safety"):
        dual_steps(1.0, [1.0], safety=1.0)


# ------------------------------------------------------------------------------------------------------- PDHG
def test_pdhg_tv_denoising_of_a_step_is_the_known_rof_solution() -> None:
    """min ½‖u − f‖² + λ TV(u) for a 1-D step f = (0,0,0,1,1,1): u = (λ/3, …, 1 − λ/3) for λ < 1.5."""
    f = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])[:, None]
    lam = 0.6
    gradient = Gradient((6,))
    tau = 0.5
    sigma_data, sigma_tv = dual_steps(tau, [1.0, gradient.norm()])
    terms = [
        ProxTerm(Identity((6,)), lambda z, s: least_squares_dual_prox(z, s, f, 1.0), sigma_data),
        TotalVariationTerm(gradient, 1.0, lam, sigma_tv),
    ]
    u = PDHG(terms, np.zeros((6, 1)), tau, nonnegative=False, max_iterations=3000).run()
    np.testing.assert_allclose(u[:, 0], [0.2, 0.2, 0.2, 0.8, 0.8, 0.8], atol=1e-6)


def test_pdhg_zero_tv_gives_the_maximum_likelihood_solution() -> None:
    """With the KL term alone and x ≥ 0, PDHG reaches the Poisson ML estimate of a small full-rank system
    (checked against SciPy's bounded L-BFGS-B on the same likelihood)."""
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0.1, 1.0, (30, 8))
    truth = rng.uniform(0.0, 10.0, 8)
    truth[2] = 0.0
    b = rng.poisson(matrix @ truth).astype(float)
    operator = MatrixOperator(matrix)

    def negative_log_likelihood(x: np.ndarray) -> tuple[float, np.ndarray]:
        m = matrix @ x
        return float(np.sum(m - b * np.log(m))), matrix.T @ (1 - b / m)

    reference = scipy.optimize.minimize(
        negative_log_likelihood, np.full(8, 5.0), jac=True, method="L-BFGS-B", bounds=[(1e-12, None)] * 8,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    ).x  # fmt: skip
    tau = 1.0 / operator.norm()
    (sigma,) = dual_steps(tau, [operator.norm()])
    term = ProxTerm(operator, lambda z, s: kl_dual_prox(z, s, b[:, None]), sigma)
    x = PDHG([term], np.zeros((8, 1)), tau, max_iterations=20_000).run()[:, 0]
    np.testing.assert_allclose(x, reference, atol=2e-3 * reference.max())
    assert kl_divergence(b, matrix @ x) <= kl_divergence(b, matrix @ reference) + 1e-6


def test_compiled_passes_equal_the_array_code() -> None:
    if not pdhg_kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(0)
    x = rng.random((7, 9, 3, 4))
    weights = np.array([1.0, 0.5, 2.0]).reshape(1, 1, 3, 1)
    sigma = rng.uniform(0.1, 1.0, (1, 1, 1, 1, 4))
    for coupled in ((), (3,)):
        fast = TotalVariationTerm(Gradient((7, 9)), weights, 0.3, sigma, coupled=coupled)
        slow = TotalVariationTerm(Gradient((7, 9)), weights, 0.3, sigma, coupled=coupled)
        slow.compiled = False
        assert fast.compiled
        p0 = rng.random((7, 9, 2, 3, 4)) * 0.2
        np.testing.assert_allclose(fast.ascend(p0.copy(), x), slow.ascend(p0.copy(), x), rtol=1e-12, atol=1e-14)
        out_fast, out_slow = x.copy(), x.copy()
        fast.add_adjoint(p0, out_fast)
        slow.add_adjoint(p0, out_slow)
        np.testing.assert_allclose(out_fast, out_slow, rtol=1e-12, atol=1e-14)
    x1, xbar, g = x.copy(), np.empty_like(x), rng.standard_normal(x.shape)
    tau = rng.uniform(0.1, 1, (1, 1, 3, 4))
    change = pdhg_kernels.primal_step(x1, xbar, g, tau, True)
    expected = np.maximum(x - tau * g, 0)
    np.testing.assert_allclose(x1, expected)
    np.testing.assert_allclose(xbar, 2 * expected - x)
    assert change == pytest.approx(np.linalg.norm(expected - x))


def test_compiled_kl_dual_prox_equals_the_array_code_on_strided_sinograms() -> None:
    """The one-pass KL conjugate prox (used when ``out`` is given) equals the closed form of the array code,
    also on the line channels of a larger dual (a strided view, as in ``fused``), with and without β."""
    if not pdhg_kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(1)
    dual = rng.normal(0.0, 2.0, (5, 6, 4, 3))  # 3 lines + 1 HAADF row
    counts = rng.poisson(3.0, (5, 6, 3, 3)).astype(float)  # zeros included
    sigma = rng.uniform(0.1, 2.0, (1, 1, 3, 3))
    for background in (0.0, 0.7):
        expected = kl_dual_prox(dual[:, :, :3].copy(), sigma, counts, background)  # array code (no out)
        work = dual.copy()
        result = kl_dual_prox(work[:, :, :3], sigma, counts, background, out=work[:, :, :3])
        assert pdhg_kernels.kl_dual_prox(dual[:, :, :3], sigma, counts, background, np.empty_like(counts))
        np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(work[:, :, 3], dual[:, :, 3])  # the HAADF row is left alone
    u = dual[:, :, :3] * 0 + np.array([0.3, 1.4, -2.0]).reshape(1, 1, 3, 1)
    zero = kl_dual_prox(u.copy(), sigma, np.zeros_like(counts), 0.0, out=u.copy())
    np.testing.assert_allclose(zero, np.minimum(u, 1.0))  # b = 0: min(u, 1)
    # a step that varies along the tilts, or an array background, takes the array code
    assert not pdhg_kernels.kl_dual_prox(dual[:, :, :3], rng.random((5, 1, 1, 1)), counts, 0.0, counts.copy())
    assert not pdhg_kernels.kl_dual_prox(dual[:, :, :3], sigma, counts, np.zeros(3), counts.copy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_back_projection_added_in_place_equals_the_adjoint(dtype: str) -> None:
    """``add_adjoint`` adds Wᵀy (and Lᵀ then Wᵀ for L ∘ W) into the estimate-sized buffer by the projector's
    update kernel, with the same bits as adding the adjoint; other operators take ``out += Aᵀy``."""
    from edstomo.algorithms.pdhg import add_adjoint
    from edstomo.operators import BlockDiagonal, MixChannels

    rng = np.random.default_rng(2)
    projector = projector_for(np.deg2rad(np.linspace(-70, 70, 9)), (12, 12), "strip", dtype)
    y = rng.standard_normal((*projector.range_shape, 3, 2)).astype(dtype)
    start = rng.standard_normal((12, 12, 3, 2)).astype(dtype)
    out = start.copy()
    add_adjoint(projector, y, out)
    np.testing.assert_array_equal(out, start + projector.adjoint(y))
    mixed = MixChannels(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0]]), projector.range_shape) @ BlockDiagonal(
        projector, 2
    )
    out = start[:, :, :2].copy()
    add_adjoint(mixed, y, out)
    np.testing.assert_allclose(out, start[:, :, :2] + mixed.adjoint(y), rtol=1e-5 if dtype == "float32" else 1e-12)
    matrix = MatrixOperator(rng.standard_normal((4, 5)))  # no projector: the plain adjoint
    vector, target = rng.standard_normal((4, 2)), np.ones((5, 2))
    add_adjoint(matrix, vector, target)
    np.testing.assert_allclose(target, 1 + matrix.adjoint(vector))


# ---------------------------------------------------------------------------------------------------- solvers
def _kl(series, volume) -> float:
    projector = projector_for(series.angles.m_as("rad"), (series.n_positions,) * 2, "strip", "float64")
    maps = np.moveaxis(volume.data, 0, 2)
    return kl_divergence(np.stack([series.channel(c) for c in volume.channels], axis=2), projector.forward(maps))


def test_poisson_tv_without_tv_reaches_the_likelihood_of_mlem() -> None:
    """regularization=0: the KL of the PDHG maps is at least as low as that of 3000 MLEM iterations."""
    series = solver_test_series(slices=1, size=10, tilts=9).select(["Ag_La", "Au_Ma"])
    volume = PoissonTVSolver(regularization=0.0, iterations=3000, dtype="float64").solve(series)
    projector = projector_for(series.angles.m_as("rad"), (10, 10), "strip", "float64")
    b = np.stack([series.channel(c) for c in series.channels], axis=2)
    x = np.ones((10, 10, 2, 1))
    sensitivity = projector.adjoint(np.ones_like(b))
    inside = sensitivity > 0
    for _ in range(3000):  # MLEM: x ← x Wᵀ(b / W x) / Wᵀ1
        ratio = np.where(b > 0, b / np.maximum(projector.forward(x), 1e-300), 0.0)
        x = np.where(inside, x * projector.adjoint(ratio) / np.where(inside, sensitivity, 1), 0.0)
    mlem = kl_divergence(b, projector.forward(x))
    assert _kl(series, volume) <= mlem * (1 + 1e-3) + 1e-6


def test_projected_totals_follow_the_optimality_conditions() -> None:
    """At the minimiser, Σ W X = Σ b − λ TV_w(X) (KKT: ⟨X, Wᵀ(1 − b/WX) + λ∇ᵀp⟩ = 0 and ⟨∇(wX), p⟩ = λ TV_w):
    maximum likelihood keeps the counts exactly, total variation removes λ TV_w of them."""
    series = solver_test_series(slices=2).select(["Ag_La", "Au_Ma"])
    projector = projector_for(series.angles.m_as("rad"), (12, 12), "strip", "float64")
    gradient = Gradient((12, 12))
    counts = float(series.data.sum())
    for regularization in (0.0, 2.0):
        volume = PoissonTVSolver(regularization=regularization, iterations=3000, dtype="float64").solve(series)
        record = volume.provenance[-1]["parameters"]
        maps = np.moveaxis(volume.data, 0, 2)
        weights = np.array([record["channel_weights"][c] for c in series.channels]).reshape(1, 1, 1, 2, 1)
        tv = float(total_variation(gradient, maps, weights, coupled=(3,)).sum())
        projected = float(projector.forward(maps).sum())
        assert projected == pytest.approx(counts - record["lambda_used"] * tv, rel=2e-4)
        if regularization:
            assert record["lambda_used"] * tv > 0.01 * counts  # the identity is not trivially 0 = 0


@pytest.mark.parametrize("cls", [PoissonTVSolver, FusedSolver])
def test_weight_fractions_of_the_maps_sum_to_one(cls) -> None:
    series = solver_test_series(slices=2)
    volume = cls(iterations=60).solve(series if cls is FusedSolver else series.select(["Ag_La", "Au_Ma"]))
    assert volume.factor == "f_A"
    factors = plugins.physics("table")().compute(series.experiment)
    maps = plugins.quantifier_for(volume.factor)(factors, threshold=1.0).quantify(volume)
    sums = maps.weight_fractions.sum(axis=0)
    assert maps.mask.any()
    np.testing.assert_allclose(sums[maps.mask], 1.0)
    assert not sums[~maps.mask].any()


def test_fused_with_a_negligible_haadf_weight_is_poisson_tv() -> None:
    series = solver_test_series(slices=1, size=10)
    common = {"iterations": 4000, "dtype": "float64"}
    lam = default_lambda(list(count_levels(series, ["Ag_La", "Au_Ma"]).values()))  # poisson-tv's λ; fused's λ₀ is 2.8
    fused = FusedSolver(
        haadf_weight=1e-9, ratios={"Ag_La": 3.0, "Au_Ma": 5.0}, regularization=lam / FusedSolver.lambda_scale, **common
    ).solve(series)
    alone = PoissonTVSolver(**common).solve(series.select(["Ag_La", "Au_Ma"]))
    np.testing.assert_allclose(fused.data, alone.data, atol=2e-3 * alone.data.max())


def test_fused_uses_the_haadf() -> None:
    """With exact HAADF = Σ r_A I_A and a large weight, the projected Σ r_A X_A matches the HAADF closely."""
    series = solver_test_series(slices=1)
    ratios = {"Ag_La": 3.0, "Au_Ma": 5.0}
    projector = projector_for(series.angles.m_as("rad"), (12, 12), "strip", "float64")

    def haadf_misfit(volume) -> float:
        model = projector.forward(3.0 * volume.data[0] + 5.0 * volume.data[1])
        return float(np.linalg.norm(model - series.channel(HAADF)) / np.linalg.norm(series.channel(HAADF)))

    weak = FusedSolver(haadf_weight=1e-6, ratios=ratios, iterations=400).solve(series)
    strong = FusedSolver(haadf_weight=1e4, ratios=ratios, iterations=400).solve(series)
    assert haadf_misfit(strong) < 0.5 * haadf_misfit(weak)
    assert haadf_misfit(strong) < 0.01


def test_fused_data_term_is_the_mixed_operator() -> None:
    """For γ = 1 the fused data term applies K = ([I; rᵀ] ⊗ I)(I ⊗ W) and its exact adjoint."""
    projector = projector_for(np.deg2rad(np.linspace(-60, 60, 7)), (8, 8), "strip", "float64")
    rng = np.random.default_rng(1)
    ratios = np.array([3.0, 5.0]).reshape(1, 1, 2, 1)
    counts = rng.poisson(5.0, (7, 8, 2, 3)).astype(float)
    sigma = np.ones((1, 1, 3, 1))
    term = FusedDataTerm(projector, counts, counts[:, :, :1], ratios, np.ones_like(ratios), 1.0, sigma, 0.0, 1.0)
    dottest(term.operator)
    x = rng.random((8, 8, 2, 3))
    y = rng.standard_normal((7, 8, 3, 3))
    np.testing.assert_allclose(term.adjoint(y), term.operator.adjoint(y), rtol=1e-12)
    z = term.ascend(np.zeros((7, 8, 3, 3)), x)  # σ = 1: prox(K x)
    forward = term.operator.forward(x)
    np.testing.assert_allclose(z[:, :, :2], kl_dual_prox(forward[:, :, :2], 1.0, counts))
    np.testing.assert_allclose(z[:, :, 2:], least_squares_dual_prox(forward[:, :, 2:], 1.0, counts[:, :, :1], 1.0))


def test_power_law_haadf_model_runs_and_reduces_to_the_linear_one() -> None:
    series = solver_test_series(slices=1)
    ratios = {"Ag_La": 3.0, "Au_Ma": 5.0}
    linear = FusedSolver(ratios=ratios, iterations=50, dtype="float64").solve(series)
    power = FusedSolver(ratios=ratios, iterations=50, dtype="float64", gamma=1.7).solve(series)
    assert np.all(np.isfinite(power.data)) and power.data.min() >= 0
    assert not np.allclose(power.data, linear.data)
    assert power.provenance[-1]["parameters"]["gamma"] == 1.7


def test_default_rules_scale_with_the_counts() -> None:
    series = solver_test_series(slices=2)
    levels = count_levels(series, ["Ag_La", "Au_Ma"])
    b = series.channel("Ag_La")
    assert levels["Ag_La"] == pytest.approx(float((b**2).sum() / b.sum()))
    assert default_lambda([100.0, 100.0]) == pytest.approx(5.4 * 100.0**-0.2)
    assert default_lambda([10.0, 1000.0]) == pytest.approx(default_lambda([100.0]))
    volume = PoissonTVSolver(iterations=2).solve(series.select(["Ag_La", "Au_Ma"]))
    record = volume.provenance[-1]["parameters"]
    assert record["lambda_used"] == pytest.approx(default_lambda(list(levels.values())))
    assert record["levels_used"] == pytest.approx(levels)
    prepared = PoissonTVSolver().prepare(series)
    assert prepared.options.levels == pytest.approx(levels)
    assert PoissonTVSolver().unfitted() == ["levels"] and prepared.unfitted() == []


def test_3d_tv_couples_slices_and_refuses_slice_chunks(tmp_path) -> None:
    series = solver_test_series(slices=3).select(["Ag_La", "Au_Ma"])
    solver = PoissonTVSolver(tv="3d", iterations=30, dtype="float64")
    assert solver.couples_slices() and not PoissonTVSolver().couples_slices()
    whole = solver.solve(series).data
    first = solver.prepare(series).solve(series.replace(data=series.data[..., :1])).data
    assert not np.allclose(first[..., 0], whole[..., 0])  # slice 0 depends on its neighbours
    path = series.save(tmp_path / "s.h5")
    with pytest.raises(ValueError, match="couples slices"):
        solve_file(solver, path, tmp_path / "v.h5")


# ---------------------------------------------------------------------------------------------------- bad input
def test_non_integer_counts_need_counts_scaled() -> None:
    series = solver_test_series(slices=1).select(["Ag_La", "Au_Ma"])
    scaled = series.replace(data=series.data * 0.37)
    with pytest.raises(InputError, match=r"non-integer.*counts='scaled'"):
        PoissonTVSolver(iterations=2).solve(scaled)
    volume = PoissonTVSolver(iterations=2, counts="scaled").solve(scaled)
    assert np.all(np.isfinite(volume.data))


def test_negative_counts_are_refused() -> None:
    series = solver_test_series(slices=1).select(["Ag_La", "Au_Ma"])
    series.data[0, 0, 0, 0] = -1.0  # bypassing the TiltSeries check, which refuses negative data at construction
    for counts_option in ("raw", "scaled"):
        with pytest.raises(InputError, match="negative"):
            PoissonTVSolver(iterations=2, counts=counts_option).solve(series)


@pytest.mark.parametrize(
    ("cls", "option", "value"),
    [
        (PoissonTVSolver, "regularization", -0.1),
        (FusedSolver, "regularization", -1.0),
        (FusedSolver, "gamma", 0.0),
        (FusedSolver, "gamma", -1.5),
        (FusedSolver, "haadf_weight", 0.0),
        (PoissonTVSolver, "background", -1.0),
        (PoissonTVSolver, "counts", "normalised"),
    ],
)
def test_bad_options_name_the_option(cls, option: str, value) -> None:
    with pytest.raises(OptionError, match=option):
        cls(**{option: value})


def test_iteration_limit_is_the_engine_s(monkeypatch) -> None:
    """More than MAX_ITERATIONS PDHG iterations need --allow-large (EDSTOMO_ALLOW_LARGE), as for every solver."""
    from edstomo.resources import ALLOW_ENV, MAX_ITERATIONS

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(OptionError, match="allow-large"):
        PoissonTVSolver(iterations=MAX_ITERATIONS + 1)
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert FusedSolver(iterations=MAX_ITERATIONS + 1).options.iterations == MAX_ITERATIONS + 1


def test_memory_check_counts_the_pdhg_work_volumes(monkeypatch) -> None:
    """The engine's memory check counts x̄, Σ Kᵀy and the TV dual of the PDHG solvers: with memory for a SIRT
    solve but not for those volumes, SIRT runs and poisson-tv is refused before allocating, naming them."""
    from edstomo import resources

    series = solver_test_series(slices=2).select(["Ag_La", "Au_Ma"])
    sizes = (2, series.n_tilts, series.n_positions, series.n_slices)
    sirt_needs = sum(resources.solve_bytes(*sizes).values())
    sinograms, volumes = PoissonTVSolver().work_arrays()
    assert (sinograms, volumes) == (4.0, 4.0) and PoissonTVSolver(tv="3d").work_arrays()[1] == 5.0
    pdhg_needs = sum(resources.solve_bytes(*sizes, extra_arrays=sinograms, extra_volumes=volumes).values())
    assert pdhg_needs - sirt_needs >= 4 * 2 * series.n_positions**2 * series.n_slices * 4  # 4 float32 volumes
    monkeypatch.delenv(resources.ALLOW_ENV, raising=False)
    monkeypatch.setattr(resources, "available_memory", lambda: (sirt_needs + pdhg_needs) // 2)
    plugins.solver("sirt")(iterations=1).solve(series)
    with pytest.raises(resources.ResourceError, match="solver work volumes"):
        PoissonTVSolver(iterations=1).solve(series)


def test_fused_needs_the_haadf() -> None:
    series = solver_test_series(slices=1).select(["Ag_La", "Au_Ma"])
    with pytest.raises(InputError, match="HAADF"):
        FusedSolver(iterations=2).solve(series)


# ---------------------------------------------------------------------------------------------- dose-sweep study
def test_dose_sweep_study_writes_metrics_summary_and_figure(tmp_path) -> None:
    from edstomo import figures
    from edstomo.study import ResultsTable
    from edstomo_plugins.studies.dose_sweep import dose_reduction

    study = plugins.study("dose-sweep")(divisors=[30, 1], seeds=1, oracle_iterations=0)
    summary = study.run(tmp_path)
    assert summary["divisors"] == [1.0, 30.0]
    table = ResultsTable.from_csv(tmp_path / "metrics.csv")
    assert len(table) == 2 * 4  # divisors x methods (one seed)
    for method in ("sirt", "hebt-sirt", "poisson-tv", "fused"):
        for divisor in ("1", "30"):
            entry = summary["statistics"][method][divisor]
            assert entry["ssim_quant_Ag"]["failed"] == 0
            assert 0.9 < entry["ssim_quant_Ag"]["mean"] <= 1.0 and entry["rmse_wt"]["mean"] > 0
    reference = summary["sirt_reference_ssim_quant_Ag"]
    assert reference == pytest.approx(table.where(method="sirt", divisor=1.0)[0]["ssim_quant_Ag"])
    assert summary["dose_reduction"]["sirt"] == 1.0
    assert summary["dose_reduction"]["fused"] == 30.0  # fused at EDS dose ÷ 30 beats SIRT at full dose
    description, dpi = figures.read_description(tmp_path / "dose_sweep.png")
    assert figures.problems(description, dpi=dpi) == []
    assert dose_reduction({1.0: 0.9, 3.0: 0.95, 10.0: 0.8}, 0.9) == 3.0
    assert dose_reduction({1.0: 0.5}, 0.9) is None


def test_real_data_pipeline_runs_the_poisson_solvers_through_their_capabilities() -> None:
    """The pipeline gives solvers that require counts counts='scaled' (its maps are normalised), fused its
    ratios, chooses their TV multiplier from the data (their automatic option), and quantifies both with the
    quantifier of their factor: no solver is named in the pipeline."""
    from edstomo_microscope.pipeline import PipelineOptions, run_pipeline

    options = PipelineOptions(
        lines=["Ag_La", "Au_Ma"],
        solvers=["poisson-tv", "fused"],
        solver_options={"poisson-tv": {"iterations": 20}, "fused": {"iterations": 20}},
        series="none",
        axis="none",
        threshold={"poisson-tv": 1.0, "fused": 1.0},
    )
    result = run_pipeline(solver_test_series(slices=3), options, pictures=False)
    for name in ("poisson-tv", "fused"):
        step = next(s for s in result.volumes[name].provenance if s.get("action") == "reconstruct")
        assert step["parameters"]["counts"] == "scaled"
        chosen = step["parameters"]["selection"]["chosen"]
        assert set(chosen) == {"regularization"} and step["parameters"]["regularization"] == chosen["regularization"]
        tried = [curve["settings"]["regularization"] for curve in step["parameters"]["selection"]["curves"]]
        assert {0.25, 0.5, 1.0, 2.0, 4.0} <= set(tried) and chosen["regularization"] in tried  # grid, maybe extended
        assert step["parameters"]["iterations"] == 20
        assert result.volumes[name].factor == "f_A"
        assert result.maps[name].provenance[-1]["plugin"] == "eds"
    assert (
        "ratios"
        in next(s for s in result.volumes["fused"].provenance if s.get("action") == "reconstruct")["parameters"]
    )
    assert any("counts='scaled'" in note for note in result.notes)


def test_dose_sweep_reports_methods_with_automatic_parameters_against_the_oracle(tmp_path) -> None:
    """Issue 12 in the dose sweep: SIRT with n and poisson-tv with its TV multiplier chosen from the counts,
    beside the fixed settings, against SIRT's truth-chosen best."""
    from edstomo.study import ResultsTable

    methods = ["sirt", "sirt-auto", "poisson-tv-auto"]
    study = plugins.study("dose-sweep")(divisors=[1], seeds=1, methods=methods, figures=False)
    summary = study.run(tmp_path)
    table = ResultsTable.from_csv(tmp_path / "metrics.csv")
    assert sorted(row["method"] for row in table.rows) == sorted(methods)
    assert set(summary["auto_over_oracle"]) == {"sirt-auto", "poisson-tv-auto"}
    assert min(summary["auto_over_oracle"].values()) >= 0.98
    chosen = json.loads((tmp_path / "settings.json").read_text())["automatic"]
    assert 1 <= chosen["1/0/sirt-auto"]["iterations"] <= 500 and chosen["1/0/sirt-auto"]["iterations"] != 50
    assert 0.25 / 8 <= chosen["1/0/poisson-tv-auto"]["regularization"] <= 4.0 * 8  # the grid, at most 3 steps beyond


def test_fused_records_fitted_ratios_also_when_prepared_for_an_automatic_choice() -> None:
    """The ratio fit made by ``prepare`` (before the TV multiplier is chosen) stays in the volume's provenance."""
    series = solver_test_series()
    for options in ({}, {"regularization": "auto", "selection": {"extend": 0}}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a choice at the grid's edge on this tiny series
            volume = plugins.solver("fused")(counts="scaled", iterations=10, **options).solve(series)
        parameters = volume.provenance[-1]["parameters"]
        assert parameters["ratios_estimated"] is True and 0 < parameters["r_squared"] <= 1, options
    given = plugins.solver("fused")(counts="scaled", iterations=10, ratios=dict.fromkeys(series.lines, 1000.0))
    assert "ratios_estimated" not in given.solve(series).provenance[-1]["parameters"]
