"""Batched non-negative least squares (edstomo_microscope.nnls): against scipy, optimality, both code paths."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from edstomo.errors import InputError
from edstomo_microscope.nnls import HAVE_NUMBA, nnls_gram
from hypothesis import given, settings
from hypothesis import strategies as st

PATHS = [False, pytest.param(True, marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed"))]


def _reference(gram, b):
    """scipy's NNLS on the equivalent least-squares problem ‖Lᵀx − L⁻¹b‖ (G = L Lᵀ)."""
    chol = np.linalg.cholesky(gram)
    return scipy.optimize.nnls(chol.T, np.linalg.solve(chol, b))[0]


@pytest.mark.parametrize("compiled", PATHS)
def test_batched_nnls_equals_scipy_on_overlapping_gaussians(compiled):
    rng = np.random.default_rng(3)
    energies = np.linspace(6, 9, 301)
    design = np.stack([np.exp(-0.5 * ((energies - c) / 0.06) ** 2) for c in (6.93, 7.06, 7.48, 7.65, 8.26)], axis=1)
    gram = design.T @ design
    truth = rng.uniform(0, 5, (200, 5)) * (rng.uniform(size=(200, 5)) > 0.4)
    data = rng.poisson(truth @ design.T + 0.2)
    solution = nnls_gram(gram, data @ design, compiled=compiled)
    assert solution.min() >= 0
    for row in range(0, 200, 7):
        np.testing.assert_allclose(solution[row], _reference(gram, data[row] @ design), atol=1e-4)


@pytest.mark.parametrize("compiled", PATHS)
@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=2, max_value=8))
def test_batched_nnls_meets_the_optimality_conditions(compiled, seed, k):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3 * k, k))
    gram = a.T @ a + 1e-3 * np.eye(k)
    rhs = rng.normal(size=(50, k)) * rng.uniform(0.1, 10, size=k)
    x = nnls_gram(gram, rhs, tol=1e-10, compiled=compiled)
    gradient = x @ gram - rhs
    scale = np.abs(rhs).max() + 1.0
    assert x.min() >= 0
    assert gradient.min() >= -1e-6 * scale  # no descent direction into the feasible set
    assert np.abs(x * gradient).max() <= 1e-6 * scale * max(1.0, x.max())  # complementary slackness


def test_batched_nnls_rejects_mismatched_shapes():
    with pytest.raises(InputError, match="nnls_gram"):
        nnls_gram(np.eye(3), np.ones((4, 2)))


def test_compiled_and_numpy_descents_agree_and_zero_columns_stay_zero():
    if not HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(8)
    a = rng.normal(size=(30, 6))
    a[:, 3] = 0.0  # a component the data never see
    gram = a.T @ a
    rhs = rng.normal(size=(500, 6)) * 5
    fast, slow = (nnls_gram(gram, rhs, tol=1e-9, compiled=c) for c in (True, False))
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    assert not fast[:, 3].any()
