"""Tests for edstomo.operators.kernels (compiled products) and the projector's fused update.

The compiled products must equal scipy.sparse's (to rounding), be exact
adjoints of each other, give the same bits for a batch column whatever the
rest of the batch is, and be safe to call from several Python threads.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from edstomo.operators import MODELS, ParallelBeamProjector, kernels
from hypothesis import given, settings
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True, params=["threads", "one-thread"])
def parallel_threshold(request, monkeypatch):
    """Run every test with the multithreaded path forced on (small test matrices) and with the default rule."""
    if request.param == "threads":
        monkeypatch.setattr(kernels, "PARALLEL_WORK", 0)
    return request.param


def _random_csr(n: int, m: int, density: float, dtype: type, seed: int) -> sp.csr_array:
    rng = np.random.default_rng(seed)
    matrix = sp.random_array((n, m), density=density, format="csr", dtype=np.float64, rng=rng)
    matrix.data = rng.uniform(0.05, 2.0, size=matrix.nnz)  # path-length-like positive weights
    matrix = matrix.astype(dtype)
    matrix.indptr = matrix.indptr.astype(np.int32)
    matrix.indices = matrix.indices.astype(np.int32)
    return matrix


def _compiled(matrix: sp.csr_array, order: np.ndarray | None = None) -> kernels.CompiledCSR:
    order = np.arange(matrix.shape[0]) if order is None else order
    return kernels.CompiledCSR(matrix.indptr, matrix.indices, matrix.data, matrix.shape, order)


def _close(actual: np.ndarray, expected: np.ndarray, dtype: type) -> None:
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


# ------------------------------------------------------------------ tile order
@pytest.mark.parametrize(("nz", "nx", "tile"), [(1, 1, 8), (5, 7, 2), (16, 16, 8), (13, 30, 8), (9, 4, 1), (3, 3, 10)])
def test_tile_order_is_a_permutation_visiting_tiles_in_turn(nz, nx, tile):
    order = kernels.tile_order(nz, nx, tile)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(nz * nx))
    i, j = np.divmod(order, nx)
    tile_index = (i // tile) * (-(-nx // tile)) + j // tile
    assert np.all(np.diff(tile_index) >= 0)  # each tile is finished before the next starts
    first = order[: min(tile, nz) * min(tile, nx)]
    assert set(first.tolist()) == {r * nx + c for r in range(min(tile, nz)) for c in range(min(tile, nx))}


def test_tile_order_rejects_a_bad_tile():
    with pytest.raises(ValueError, match="tile.*positive.*0"):
        kernels.tile_order(4, 4, 0)


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_blocks_split_rows_and_columns_by_nonzeros(threads):
    matrix = _random_csr(200, 50, 0.1, np.float64, 0)
    compiled = _compiled(matrix, np.random.default_rng(1).permutation(200))
    for bounds, counts, total in (
        (compiled._rows(threads), np.diff(matrix.indptr)[compiled.order], 200),
        (compiled._cols(threads), np.bincount(matrix.indices, minlength=50), 50),
    ):
        assert bounds[0] == 0 and bounds[-1] == total and len(bounds) == threads + 1
        assert np.all(np.diff(bounds) >= 0)
        per_thread = [counts[a:b].sum() for a, b in itertools.pairwise(bounds)]
        assert max(per_thread) - min(per_thread) <= 2 * counts.max()


def test_unsorted_rows_are_rejected():
    matrix = _random_csr(6, 9, 0.6, np.float64, 2)
    row = next(r for r in range(6) if matrix.indptr[r + 1] - matrix.indptr[r] >= 2)
    indices = matrix.indices.copy()
    start = matrix.indptr[row]
    indices[start], indices[start + 1] = indices[start + 1], indices[start]
    with pytest.raises(ValueError, match="indices must increase strictly within each row"):
        kernels.CompiledCSR(matrix.indptr, indices, matrix.data, matrix.shape, np.arange(6))
    with pytest.raises(ValueError, match="order has shape"):
        kernels.CompiledCSR(matrix.indptr, matrix.indices, matrix.data, matrix.shape, np.arange(5))


# ------------------------------------------------------------ equality, adjoint
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    m=st.integers(1, 60),
    density=st.floats(0.0, 0.6),
    batch=st.integers(1, 37),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_compiled_products_equal_scipy(n, m, density, batch, dtype, seed):
    matrix = _random_csr(n, m, density, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    compiled = _compiled(matrix, rng.permutation(n))
    y = rng.standard_normal((m, batch)).astype(dtype)
    x = rng.standard_normal((n, batch)).astype(dtype)
    gathered, scattered = compiled.gather(y), compiled.scatter(x)
    assert gathered.dtype == dtype and scattered.dtype == dtype
    _close(gathered, matrix.astype(np.float64) @ y.astype(np.float64), dtype)
    _close(scattered, matrix.T.astype(np.float64) @ x.astype(np.float64), dtype)


@pytest.mark.parametrize("batch", [1, 3, 16, 33])
def test_compiled_products_are_adjoint(batch):
    matrix = _random_csr(120, 90, 0.15, np.float64, 3)
    compiled = _compiled(matrix, kernels.tile_order(12, 10, 4))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((120, batch))
    y = rng.standard_normal((90, batch))
    lhs = np.vdot(compiled.scatter(x), y)  # <Aᵀ x, y>
    rhs = np.vdot(x, compiled.gather(y))  # <x, A y>
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), abs(rhs))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_projector_numba_equals_scipy(model, dtype):
    angles = np.deg2rad(np.arange(-75.0, 76.0, 15.0))
    fast = ParallelBeamProjector(angles, (21, 18), n_det=25, model=model, dtype=dtype, kernel="numba")
    slow = ParallelBeamProjector(angles, (21, 18), n_det=25, model=model, dtype=dtype, kernel="scipy")
    assert (fast.kernel, slow.kernel) == ("numba", "scipy")
    rng = np.random.default_rng(5)
    vol = rng.standard_normal((21, 18, 4, 3))
    sino = rng.standard_normal((len(angles), 25, 4, 3))
    kind = np.dtype(dtype).type
    _close(fast.forward(vol), slow.forward(vol).astype(np.float64), kind)
    _close(fast.adjoint(sino), slow.adjoint(sino).astype(np.float64), kind)


def test_projector_numba_dot_test():
    proj = ParallelBeamProjector(np.deg2rad([-60.0, -7.0, 33.0, 90.0]), (17, 23), dtype="float64", kernel="numba")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((17, 23, 5))
    y = rng.standard_normal((4, 23, 5))
    lhs, rhs = np.vdot(proj.forward(x), y), np.vdot(x, proj.adjoint(y))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_column_does_not_depend_on_the_rest_of_the_batch(dtype):
    """Bit-identical columns: the premise of solving a volume in slice chunks."""
    matrix = _random_csr(150, 110, 0.2, dtype, 7)
    compiled = _compiled(matrix, kernels.tile_order(15, 10, 4))
    rng = np.random.default_rng(8)
    x = rng.standard_normal((150, 41)).astype(dtype)
    u = rng.standard_normal((110, 41)).astype(dtype)
    scale = rng.uniform(0.1, 1.0, 150).astype(dtype)
    full_x = x.copy()
    compiled.update(u, full_x, scale, clip=True)
    for cols in (slice(0, 1), slice(3, 20), slice(17, 41)):
        part_x = np.ascontiguousarray(x[:, cols])
        compiled.update(np.ascontiguousarray(u[:, cols]), part_x, scale, clip=True)
        np.testing.assert_array_equal(part_x, full_x[:, cols])
        np.testing.assert_array_equal(compiled.gather(np.ascontiguousarray(u[:, cols])), compiled.gather(u)[:, cols])
        np.testing.assert_array_equal(compiled.scatter(np.ascontiguousarray(x[:, cols])), compiled.scatter(x)[:, cols])


def test_results_are_the_same_bits_for_any_thread_count(monkeypatch):
    """Every output value is summed by one thread in one order, whatever the number of threads."""
    matrix = _random_csr(300, 200, 0.05, np.float32, 9)
    compiled = _compiled(matrix, kernels.tile_order(15, 20, 4))
    rng = np.random.default_rng(10)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    y = rng.standard_normal((200, 6)).astype(np.float32)
    results = []
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS}):
        monkeypatch.setattr(compiled, "_threads", lambda batch, n=threads: n)
        estimate = x.copy()
        compiled.update(y, estimate, np.full(300, 0.3, dtype=np.float32), clip=False)
        results.append((compiled.gather(y), compiled.scatter(x), estimate))
    for result in results[1:]:
        for actual, expected in zip(result, results[0]):
            np.testing.assert_array_equal(actual, expected)


def test_concurrent_calls_from_python_threads_are_correct():
    proj = ParallelBeamProjector(np.deg2rad(np.arange(-70.0, 71.0, 10.0)), (32, 32), dtype="float64")
    rng = np.random.default_rng(11)
    volumes = [rng.standard_normal((32, 32, 3)) for _ in range(6)]
    expected = [proj.forward(v) for v in volumes]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        for _ in range(5):
            results[index] = proj.forward(volumes[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, value in enumerate(expected):
        np.testing.assert_array_equal(results[index], value)


# ---------------------------------------------------------------- fused update
@pytest.mark.parametrize("kernel", ["numba", "scipy"])
@pytest.mark.parametrize("nonnegative", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_update_equals_back_projection_step_and_forward(kernel, nonnegative, dtype):
    angles = np.deg2rad(np.arange(-75.0, 76.0, 25.0))
    proj = ParallelBeamProjector(angles, (19, 22), n_det=27, dtype=dtype, kernel=kernel)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((19, 22, 2, 5)).astype(dtype)
    u = rng.standard_normal((len(angles), 27, 2, 5)).astype(dtype)
    scale = rng.uniform(0.0, 0.2, (19, 22)).astype(dtype)
    expected_x = x.astype(np.float64) + scale[..., None, None] * proj.adjoint(u).astype(np.float64)
    if nonnegative:
        expected_x = np.maximum(expected_x, 0.0)
    estimate = x.copy()
    projection = proj.update(estimate, u, scale, nonnegative=nonnegative)
    kind = np.dtype(dtype).type
    _close(estimate, expected_x, kind)
    _close(projection, proj.forward(estimate).astype(np.float64), kind)
    assert projection.shape == (len(angles), 27, 2, 5) and projection.dtype == np.dtype(dtype)
    if nonnegative:
        assert estimate.min() >= 0.0
    again = x.copy()
    assert proj.update(again, u, scale.ravel(), nonnegative=nonnegative, project=False) is None
    np.testing.assert_array_equal(again, estimate)


def test_update_of_sirt_matches_textbook_sirt():
    """Iterating update() is SIRT: x ← max(0, x + C Wᵀ R (b − W x)) on the explicit matrix."""
    proj = ParallelBeamProjector(np.deg2rad(np.arange(-60.0, 61.0, 20.0)), (12, 12), dtype="float64")
    dense = proj.matrix.toarray()
    truth = np.random.default_rng(13).uniform(0.0, 1.0, (12, 12, 2))
    b = proj.forward(truth)
    r = 1.0 / proj.row_sums().ravel()
    c = 1.0 / proj.col_sums().ravel()
    x = np.zeros((12, 12, 2))
    reference = np.zeros((144, 2))
    projection = proj.forward(x)
    for _ in range(15):
        u = r.reshape(proj.range_shape)[..., None] * (b - projection)
        projection = proj.update(x, u, c)
        weighted = r[:, None] * (b.reshape(-1, 2) - dense @ reference)
        reference = np.maximum(reference + c[:, None] * (dense.T @ weighted), 0.0)
    np.testing.assert_allclose(x.reshape(144, 2), reference, rtol=1e-10, atol=1e-12)


def test_update_rejects_bad_arguments():
    proj = ParallelBeamProjector([0.0, 0.7], (5, 6), n_det=7)
    good_x = np.zeros((5, 6, 3), dtype=np.float32)
    good_u = np.zeros((2, 7, 3), dtype=np.float32)
    scale = np.ones((5, 6))
    with pytest.raises(ValueError, match="volume must be a C-contiguous float32.*float64"):
        proj.update(np.zeros((5, 6, 3)), good_u, scale)
    with pytest.raises(ValueError, match="volume must be a C-contiguous"):
        proj.update(np.zeros((5, 6, 3, 2), dtype=np.float32)[..., 0], good_u, scale)
    with pytest.raises(ValueError, match="volume.*leading axes \\(5, 6\\)"):
        proj.update(np.zeros((6, 5, 3), dtype=np.float32), good_u, scale)
    with pytest.raises(ValueError, match="volume must be"):
        proj.update([[0.0]], good_u, scale)
    with pytest.raises(ValueError, match=r"residual has batch axes \(4,\), expected the volume's \(3,\)"):
        proj.update(good_x, np.zeros((2, 7, 4)), scale)
    with pytest.raises(ValueError, match=r"residual has shape \(2, 6, 3\)"):
        proj.update(good_x, np.zeros((2, 6, 3)), scale)
    with pytest.raises(ValueError, match="scale has shape \\(29,\\), expected 30 values"):
        proj.update(good_x, good_u, np.ones(29))


def test_kernel_argument_is_checked():
    with pytest.raises(ValueError, match=r"kernel must be one of \['auto', 'numba', 'scipy'\], got 'cuda'"):
        ParallelBeamProjector([0.0], (4, 4), kernel="cuda")
    assert ParallelBeamProjector([0.0], (4, 4)).kernel == "numba"
    assert "kernel='scipy'" in repr(ParallelBeamProjector([0.0], (4, 4), kernel="scipy"))


def test_describe_names_threads_and_numba():
    info = kernels.describe()
    assert info["numba"] == numba.__version__
    assert info["threads"] == numba.get_num_threads()


def test_small_products_use_one_thread_and_large_ones_all(monkeypatch):
    matrix = _random_csr(50, 40, 0.2, np.float64, 14)
    compiled = _compiled(matrix)
    monkeypatch.setattr(kernels, "PARALLEL_WORK", matrix.nnz * 8)
    assert compiled._threads(7) == 1
    assert compiled._threads(8) == numba.get_num_threads()


def test_one_slice_gives_the_same_bits_as_its_column_in_a_batch():
    """Batch width changes nothing (vectorised and scalar loops do the same operations)."""
    proj = ParallelBeamProjector(np.deg2rad([-40.0, 10.0, 75.0]), (14, 14), kernel="numba")
    rng = np.random.default_rng(15)
    vol = rng.standard_normal((14, 14, 9)).astype(np.float32)
    sino = rng.standard_normal((3, 14, 9)).astype(np.float32)
    forward, adjoint = proj.forward(vol), proj.adjoint(sino)
    estimate = vol.copy()
    projection = proj.update(estimate, sino, np.full((14, 14), 0.1))
    for column in range(9):
        np.testing.assert_array_equal(proj.forward(vol[..., column]), forward[..., column])
        np.testing.assert_array_equal(proj.adjoint(sino[..., column]), adjoint[..., column])
        single = np.ascontiguousarray(vol[..., column])
        single_projection = proj.update(single, sino[..., column], np.full((14, 14), 0.1))
        np.testing.assert_array_equal(single, estimate[..., column])
        np.testing.assert_array_equal(single_projection, projection[..., column])


# ---------------------------------------------------------------- channel mixing
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mix_channels_equals_the_matrix_product_with_the_same_bits_per_column(dtype):
    rng = np.random.default_rng(16)
    matrix = np.array([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.8, 0.8, 0.8], [0.0, 0.0, 0.0]], dtype=dtype)
    x = rng.standard_normal((50, 3, 37)).astype(dtype)
    mixed = kernels.mix_channels(matrix, x)
    assert mixed.shape == (50, 4, 37) and mixed.dtype == dtype and mixed.flags.c_contiguous
    expected = np.einsum("mk,ikc->imc", matrix.astype(np.float64), x.astype(np.float64))
    _close(mixed, expected, dtype)
    assert np.all(mixed[:, 3] == 0.0)
    for columns in (slice(0, 1), slice(5, 21)):
        part = kernels.mix_channels(matrix, np.ascontiguousarray(x[:, :, columns]))
        np.testing.assert_array_equal(part, mixed[:, :, columns])
