"""The operator layer: algebra, block systems, sums, norms, gradient, subsets, projector factorisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from edstomo.errors import InputError
from edstomo.operators import (
    BlockDiagonal,
    Concatenate,
    Diagonal,
    Gradient,
    Identity,
    MatrixOperator,
    MixChannels,
    ParallelBeamProjector,
)
from edstomo_plugins.solvers.hebt import hebt_operator
from hypothesis import given, settings
from hypothesis import strategies as st

RNG = np.random.default_rng(0)
W = ParallelBeamProjector(np.deg2rad([-60.0, -10.0, 25.0, 70.0]), (6, 8), dtype="float64")


def dense(operator) -> np.ndarray:
    """The operator as a dense matrix on one batch column (column j = A e_j)."""
    n = int(np.prod(operator.domain_shape))
    columns = [operator.forward(np.eye(n)[j].reshape(operator.domain_shape)).ravel() for j in range(n)]
    return np.stack(columns, axis=1)


def test_algebra_matches_matrices():
    a, b = MatrixOperator(RNG.random((4, 3))), MatrixOperator(RNG.random((4, 3)))
    c = MatrixOperator(RNG.random((3, 5)))
    np.testing.assert_allclose(dense(a + b), a.matrix + b.matrix)
    np.testing.assert_allclose(dense(a - 2 * b), a.matrix - 2 * b.matrix)
    np.testing.assert_allclose(dense(-a), -a.matrix)
    np.testing.assert_allclose(dense(a @ c), a.matrix @ c.matrix)
    np.testing.assert_allclose(dense(a.T), a.matrix.T)
    assert a.T.T is a and (a @ c).shape == (4, 5)
    x = RNG.random((3, 2, 2))
    np.testing.assert_allclose(a @ x, np.einsum("ij,jkl->ikl", a.matrix, x))


def test_shapes_are_checked():
    with pytest.raises(InputError, match="cannot compose"):
        MatrixOperator(np.ones((2, 3))) @ MatrixOperator(np.ones((2, 3)))
    with pytest.raises(InputError, match="cannot add"):
        MatrixOperator(np.ones((2, 3))) + MatrixOperator(np.ones((3, 2)))
    with pytest.raises(InputError, match=r"leading axes \(6, 8\)"):
        W.forward(np.ones((8, 6)))


def test_sums_norm_and_dense_form_of_the_hebt_system():
    """Row/column sums and ‖A‖ of eq. 17 from the generic code equal those of the explicit block matrix."""
    alpha, k = 0.7, 3
    op = hebt_operator(W, k, alpha)
    w = W.matrix.toarray()
    # the operator's channel axis is the last core axis: reorder the explicit blocks to match
    blocks = sp.bmat([[(1 - alpha) * w if i == j else None for j in range(k)] for i in range(k)] + [[alpha * w] * k])
    perm_rows = np.arange((k + 1) * w.shape[0]).reshape(k + 1, -1).T.ravel()
    perm_cols = np.arange(k * w.shape[1]).reshape(k, -1).T.ravel()
    explicit = blocks.toarray()[perm_rows][:, perm_cols]
    np.testing.assert_allclose(dense(op), explicit, atol=1e-12)
    np.testing.assert_allclose(op.row_sums().ravel(), explicit.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(op.col_sums().ravel(), explicit.sum(axis=0), rtol=1e-12)
    assert op.norm() == pytest.approx(np.linalg.norm(explicit, 2), rel=1e-6)


def test_literal_block_form_equals_the_mixing_form():
    alpha, k = 0.4, 2
    literal = Concatenate(
        [(1 - alpha) * BlockDiagonal(W, k), alpha * (MixChannels(np.ones((1, k)), W.range_shape) @ BlockDiagonal(W, k))]
    )
    np.testing.assert_allclose(dense(literal), dense(hebt_operator(W, k, alpha)), atol=1e-12)
    left, projector = literal.projector_factorization()
    assert projector is W and left.domain_shape == (*W.range_shape, k)


def test_projector_factorisation_and_subsets():
    op = Diagonal(RNG.random((4, 8))) @ W
    left, projector = op.projector_factorization()
    assert projector is W
    x = RNG.random((6, 8, 2))
    np.testing.assert_allclose(left.forward(projector.forward(x)), op.forward(x))
    sub = op.subset([0, 2])
    np.testing.assert_allclose(sub.forward(x), op.forward(x)[[0, 2]], rtol=1e-12)
    assert MatrixOperator(np.ones((2, 2))).projector_factorization() is None
    with pytest.raises(NotImplementedError):
        MatrixOperator(np.ones((2, 2))).subset([0])


def test_identity_and_block_diagonal_sums():
    assert Identity((2, 3)).is_identity and BlockDiagonal(Identity((2, 3)), 4).is_identity
    block = BlockDiagonal(W, 3)
    np.testing.assert_allclose(block.row_sums(), np.repeat(W.row_sums(dtype="float64")[..., None], 3, axis=-1))
    np.testing.assert_allclose(block.col_sums()[..., 1], W.col_sums(dtype="float64"))


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 7), st.integers(2, 7), st.floats(0.5, 3.0))
def test_gradient_of_a_ramp_is_constant_inside(nz, nx, slope):
    ramp = slope * np.arange(nx)[None, :] * np.ones((nz, 1))
    g = Gradient((nz, nx)).forward(ramp)
    np.testing.assert_allclose(g[:, :-1, 1], slope)
    assert not g[:, -1, 1].any() and not g[..., 0].any()  # Neumann boundary; no change along z


def test_gradient_adjoint_is_minus_divergence_and_total_variation_of_a_step():
    step = np.zeros((4, 10))
    step[:, 5:] = 2.0
    grad = Gradient((4, 10), spacing=(1.0, 0.5))
    g = grad.forward(step)
    tv = np.sqrt((g**2).sum(axis=-1)).sum()
    assert tv == pytest.approx(4 * 2.0 / 0.5)  # one jump of 2 per row, over a spacing of 0.5
    p = RNG.random((4, 10, 2))
    divergence = np.zeros((4, 10))
    divergence[1:] += p[:-1, :, 0]
    divergence[:-1] -= p[:-1, :, 0]
    divergence[:, 1:] += p[:, :-1, 1] / 0.5
    divergence[:, :-1] -= p[:, :-1, 1] / 0.5
    np.testing.assert_allclose(grad.adjoint(p), divergence)


def test_norm_of_the_projector_is_its_largest_singular_value():
    assert W.norm() == pytest.approx(np.linalg.norm(W.matrix.toarray(), 2), rel=1e-6)
    assert Gradient((5, 5)).norm() < np.sqrt(8) + 1e-9  # ‖∇‖² ≤ 4 d in d dimensions


def test_bad_block_arguments():
    with pytest.raises(InputError, match="channels"):
        BlockDiagonal(W, 0)
    with pytest.raises(InputError, match="matrix"):
        MixChannels([1.0, 2.0], W.range_shape)
    with pytest.raises(InputError, match="does not stack"):
        Concatenate([W, BlockDiagonal(W, 2)])
    with pytest.raises(InputError, match="axes"):
        Gradient((3, 3), axes=(0, 2))
    with pytest.raises(InputError, match="spacing"):
        Gradient((3, 3), spacing=(1.0, -1.0))
