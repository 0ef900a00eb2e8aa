"""Ordered subsets: angle partitions of the projector, the packed whole-pass SART kernel, subset schedules."""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
import scipy.sparse as sp
from edstomo.algorithms import SART, angle_subsets
from edstomo.errors import InputError
from edstomo.operators import ParallelBeamProjector, kernels
from edstomo.testing import RATIOS, solver_test_series
from hypothesis import given, settings
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

ANGLES = np.deg2rad(np.linspace(-70.0, 70.0, 13))


@pytest.fixture(params=["threads", "one-thread"])
def parallel(request, monkeypatch):
    """Run with the multithreaded path forced on (small test problems) and with the default rule."""
    if request.param == "threads":
        monkeypatch.setattr(kernels, "PARALLEL_WORK", 0)
    return request.param


# ------------------------------------------------------------------ split_columns
@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 30),
    blocks=st.integers(1, 8),
    width=st.integers(1, 5),
    density=st.floats(0.0, 0.7),
    seed=st.integers(0, 2**16),
)
def test_split_columns_equals_selecting_and_renumbering_columns(rows, blocks, width, density, seed):
    rng = np.random.default_rng(seed)
    matrix = sp.random_array((rows, blocks * width), density=density, format="csr", rng=rng)
    matrix.sort_indices()
    groups = int(rng.integers(1, blocks + 1))
    owner = rng.integers(-1, groups, size=blocks)
    owner[rng.permutation(blocks)[:groups]] = np.arange(groups)  # every group owns a block
    start = np.zeros(blocks, dtype=np.int64)
    members = [rng.permutation(np.flatnonzero(owner == g)) for g in range(groups)]  # any order within a group
    for part in members:
        start[part] = np.arange(len(part)) * width
    group_of = np.repeat(owner, width)
    local_of = (start[:, None] + np.arange(width)).ravel()
    indptr = matrix.indptr.astype(np.int32)
    pointers, indices, data, sums = kernels.split_columns(indptr, matrix.indices, matrix.data, group_of, local_of)
    assert pointers.shape == (groups, rows + 1) and pointers[0, 0] == 0 and pointers[-1, -1] == len(data)
    for g, part in enumerate(members):
        columns = (part[:, None] * width + np.arange(width)).ravel()
        first, last = pointers[g, 0], pointers[g, -1]
        got = sp.csr_array((data[first:last], indices[first:last], pointers[g] - first), shape=(rows, len(columns)))
        assert got.has_canonical_format
        np.testing.assert_array_equal(got.toarray(), matrix[:, columns].toarray())
        np.testing.assert_allclose(sums[g], matrix[:, columns].sum(axis=1), rtol=1e-12)


# ---------------------------------------------------------------------- partition
@pytest.mark.parametrize("kernel", ["numba", "scipy"])
@pytest.mark.parametrize("model", ["strip", "joseph"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_partition_gives_the_projectors_of_its_angles(kernel, model, dtype):
    """The sliced matrices equal those built for the groups' angles; the column sums agree to rounding."""
    W = ParallelBeamProjector(ANGLES, (15, 17), n_det=19, det_spacing=0.9, model=model, dtype=dtype, kernel=kernel)
    rng = np.random.default_rng(1)
    for parts in (angle_subsets(13, 4), angle_subsets(13, 5, "random", 2), [[7, 2, 11], [0]]):
        partition = W.partition(parts)
        assert (partition.packed is not None) == (kernel == "numba")
        for part, sliced in zip(parts, partition.projectors, strict=True):
            built = ParallelBeamProjector(ANGLES[part], (15, 17), 19, 0.9, model=model, dtype=dtype, kernel=kernel)
            for ours, theirs in ((sliced.matrix_t, built.matrix_t), (sliced.matrix, built.matrix)):
                assert ours.shape == theirs.shape
                np.testing.assert_array_equal(ours.indptr, theirs.indptr)
                np.testing.assert_array_equal(ours.indices, theirs.indices)
                np.testing.assert_array_equal(ours.data, theirs.data)
            np.testing.assert_array_equal(sliced.angles, built.angles)
            np.testing.assert_array_equal(sliced.row_sums(dtype="float64"), built.row_sums(dtype="float64"))
            np.testing.assert_allclose(
                sliced.col_sums(dtype="float64"),
                built.col_sums(dtype="float64"),
                rtol=1e-6 if dtype == "float32" else 1e-13,
            )
            x = rng.random((15, 17, 3)).astype(dtype)
            y = rng.random((len(part), 19, 3)).astype(dtype)
            np.testing.assert_array_equal(sliced.forward(x), built.forward(x))
            np.testing.assert_array_equal(sliced.adjoint(y), built.adjoint(y))
            np.testing.assert_array_equal(W.subset(part).forward(x), built.forward(x))


def test_partition_is_cached_and_checks_its_groups():
    W = ParallelBeamProjector(ANGLES, (9, 9))
    first = W.partition(angle_subsets(13, 3))
    assert W.partition(angle_subsets(13, 3)) is first
    for count in (2, 4, 5, 6):  # four more partitions push the first one out
        W.partition(angle_subsets(13, count))
    assert W.partition(angle_subsets(13, 3)) is not first
    with pytest.raises(InputError, match="overlap"):
        W.partition([[0, 1], [1, 2]])
    with pytest.raises(InputError, match=r"angles: \[13\] must be a non-empty list of indices below 13"):
        W.partition([[0], [13]])
    with pytest.raises(InputError, match="non-empty"):
        W.subset([])


# ------------------------------------------------------------------ packed pass
def _one_by_one(packed, x, b, weights, steps, clip):
    """The pass with separate products and numpy arithmetic: scatter, subtract, scale, update."""
    squares = np.zeros(x.shape[1])
    for s, part in enumerate(packed.parts):
        rows = slice(packed.offsets[s], packed.offsets[s + 1])
        u = part.scatter(x)
        u -= b[rows]
        squares += (u.astype(np.float64) ** 2).sum(axis=0)
        u *= weights[rows, None]
        part.update(u, x, steps[s], clip=clip)
    return squares


def _packed_problem(batch, dtype=np.float32, subsets=4, seed=2):
    W = ParallelBeamProjector(ANGLES, (20, 20), dtype=np.dtype(dtype).name)
    packed = W.partition(angle_subsets(13, subsets)).packed
    rng = np.random.default_rng(seed)
    x = rng.random((400, batch)).astype(dtype)
    b = (rng.random((packed.offsets[-1], batch)) * 5).astype(dtype)
    weights = -rng.uniform(0.01, 0.1, packed.offsets[-1]).astype(dtype)
    steps = rng.uniform(0.0, 0.5, (subsets, 400)).astype(dtype)
    return packed, x, b, weights, steps


@pytest.mark.parametrize("batch", [1, 5, 16, 40, 64])
@pytest.mark.parametrize("clip", [True, False])
def test_packed_pass_gives_the_bits_of_the_products_one_by_one(parallel, batch, clip):
    packed, x, b, weights, steps = _packed_problem(batch)
    expected_x = x.copy()
    expected_squares = _one_by_one(packed, expected_x, b, weights, steps, clip)
    work = packed.work(batch)
    squares = packed.sart_pass(x, b, weights, steps, work, clip=clip, current=1, fresh=True, project_last=True)
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_allclose(squares, expected_squares, rtol=1e-5)
    # Four subsets: work[(1 + 4) % 2] now holds A_0ᵀ x of the new estimate, and the next pass starts from it.
    np.testing.assert_array_equal(work[1, : packed.offsets[1]], packed.parts[0].scatter(x))
    again = x.copy()
    _one_by_one(packed, again, b, weights, steps, clip)
    packed.sart_pass(x, b, weights, steps, work, clip=clip, current=1, fresh=False, project_last=False)
    np.testing.assert_array_equal(x, again)


def test_packed_pass_columns_do_not_depend_on_the_batch_or_the_threads(monkeypatch):
    """A batch column gets the same bits alone, in any batch, with any number of threads (chunk invariance)."""
    packed, x, b, weights, steps = _packed_problem(48, subsets=5)
    whole = x.copy()
    packed.sart_pass(whole, b, weights, steps, packed.work(48), clip=True, current=0, fresh=True, project_last=False)
    monkeypatch.setattr(kernels, "PARALLEL_WORK", 0)
    for columns in (slice(0, 1), slice(3, 20), slice(8, 48)):
        part = np.ascontiguousarray(x[:, columns])
        width = part.shape[1]
        sub_b = np.ascontiguousarray(b[:, columns])
        packed.sart_pass(
            part, sub_b, weights, steps, packed.work(width), clip=True, current=0, fresh=True, project_last=False
        )
        np.testing.assert_array_equal(part, whole[:, columns])
    bounds = packed.columns(48)
    assert bounds[0] == 0 and bounds[-1] == 48 and np.all(np.diff(bounds) >= kernels.MIN_COLUMNS)
    assert len(bounds) - 1 == min(numba.get_num_threads(), 48 // kernels.MIN_COLUMNS)


def test_packed_subsets_check_their_offsets():
    with pytest.raises(ValueError, match="offsets"):
        kernels.PackedSubsets(
            np.zeros((2, 4), dtype=np.int64), np.zeros(0, np.int32), np.zeros(0), [0, 3, 3], np.arange(3)
        )


# --------------------------------------------------------------------- SART
def _noisy(batch, seed=3):
    W = ParallelBeamProjector(ANGLES, (24, 24))
    rng = np.random.default_rng(seed)
    truth = rng.random((24, 24, batch)).astype(np.float32)
    return W, (W.forward(truth) + rng.normal(0.0, 0.5, (13, 24, batch))).astype(np.float32), truth


@pytest.mark.parametrize("batch", [2, 48])
def test_sart_fast_paths_give_the_same_bits(parallel, batch):
    """The packed whole-pass kernel, the subset-by-subset kernels, and each column alone agree bit for bit."""
    W, b, truth = _noisy(batch)
    runs = {}
    for path in ("packed", "subset by subset"):
        x = np.zeros_like(truth)
        algorithm = SART(W, b, x, subsets=angle_subsets(13, 4), max_iterations=5)
        algorithm.run(iterations=0)  # set-up only
        assert algorithm._packed is not None
        if path != "packed":
            algorithm._packed = None
        algorithm.run()
        runs[path] = (x, algorithm.history["residual"])
    np.testing.assert_array_equal(runs["packed"][0], runs["subset by subset"][0])
    np.testing.assert_allclose(runs["packed"][1], runs["subset by subset"][1], rtol=1e-5)
    for column in (0, batch - 1):
        alone = np.zeros_like(truth[..., column])
        SART(W, np.ascontiguousarray(b[..., column]), alone, subsets=angle_subsets(13, 4), max_iterations=5).run()
        np.testing.assert_array_equal(alone, runs["packed"][0][..., column])
    generic = np.zeros_like(truth)
    SART(W, b, generic, subsets=angle_subsets(13, 4), max_iterations=5, fast=False).run()
    np.testing.assert_allclose(generic, runs["packed"][0], rtol=0, atol=2e-5 * np.abs(generic).max())


def test_subsets_of_unequal_size_get_steps_in_proportion_to_their_size():
    """Textbook OS-SART on the explicit matrix with λ_s = λ |S_s| / max |S|, for an unbalanced partition."""
    W = ParallelBeamProjector(ANGLES, (12, 12), dtype="float64")
    truth = np.random.default_rng(4).random((12, 12, 1))
    b = W.forward(truth) + 0.1
    dense = W.matrix.toarray().reshape(13, 12, -1)
    parts = [np.arange(0, 13, 3), np.array([1, 5]), np.array([11]), np.array([2, 4, 6, 7, 8, 9, 10, 12, 3])]
    parts[-1] = np.setdiff1d(np.arange(13), np.concatenate(parts[:3]))
    reference = np.zeros(144)
    for _ in range(3):
        for part in parts:
            block = dense[part].reshape(-1, 144)
            rows, cols = block.sum(axis=1), block.sum(axis=0)
            r = np.divide(1, rows, out=np.zeros_like(rows), where=rows > 0)
            c = np.divide(1, cols, out=np.zeros_like(cols), where=cols > 0)
            step = 0.9 * len(part) / (13 / 4)  # λ |S_s| / mean |S|
            reference = np.maximum(0.0, reference + step * c * (block.T @ (r * (b[part].ravel() - block @ reference))))
    for fast in (True, False):
        x = np.zeros_like(truth)
        SART(W, b, x, subsets=parts, relaxation=0.9, max_iterations=3, fast=fast).run()
        np.testing.assert_allclose(x.ravel(), reference, rtol=1e-10, atol=1e-12)


def test_a_step_of_two_or_more_is_refused():
    W, b, truth = _noisy(1)
    with pytest.raises(InputError, match=r"relaxation: 1.5 gives the largest of these subsets \(9 of 4.33 angles"):
        SART(W, b, np.zeros_like(truth), subsets=[[0], [1, 2, 3], np.arange(4, 13)], relaxation=1.5).run()


def test_golden_ordering_visits_far_apart_subsets():
    parts = angle_subsets(31, 31, "golden")
    first = np.array([int(part[0]) for part in parts])
    np.testing.assert_array_equal(np.sort(first), np.arange(31))
    assert np.abs(np.diff(first)).min() >= 5  # consecutive tilts at least 25° apart (interleaved: 5°)
    pairs = angle_subsets(31, 16, "golden")
    assert sorted(map(tuple, pairs)) == sorted(map(tuple, angle_subsets(31, 16, "interleaved")))


def test_sart_plugin_default_subsets_and_provenance():
    series = solver_test_series()  # 9 tilts
    volume = et.plugins.solver("sart")().solve(series)
    assert volume.provenance[-1]["parameters"]["subsets_used"] == 9
    three = et.plugins.solver("sart")(iterations=2, subsets=3, ordering="interleaved").solve(series)
    assert three.provenance[-1]["parameters"]["subsets_used"] == 3


def test_hebt_with_subsets_at_alpha_zero_is_sart_of_the_ratio_scaled_lines():
    """At α = 0 the HAADF rows weigh nothing, so OS-SART HEBT is OS-SART of each line times its ratio r_A."""
    series = solver_test_series(tilts=9)
    ratios = {"Ag_La": 3.0, "Au_Ma": 0.5}
    hebt = et.plugins.solver("hebt-sirt")(alpha=0.0, ratios=ratios, iterations=3, subsets=3, dtype="float64")
    sart = et.plugins.solver("sart")(iterations=3, subsets=3, dtype="float64")
    bimodal, lines = hebt.solve(series), sart.solve(series)
    for k, line in enumerate(lines.channels):
        np.testing.assert_allclose(bimodal.data[k], ratios[line] * lines.data[k], rtol=1e-9, atol=1e-9)
    assert not np.allclose(
        bimodal.data,
        et.plugins.solver("hebt-sirt")(alpha=0.0, ratios=ratios, iterations=3, dtype="float64").solve(series).data,
    )


def test_hebt_subsets_fit_the_stacked_system_in_fewer_passes_and_are_checked():
    """After the same passes OS-SART HEBT fits the weighted EDS and HAADF rows of eq. 17 better than SIRT."""
    from edstomo.operators import projector_for

    series = solver_test_series(tilts=9)
    ratios, alpha = dict(RATIOS), 0.8  # the ratios the HAADF was made with
    projector = projector_for(series.angles.m_as("rad"), (12, 12), "strip", "float64")
    misfit = {}
    for subsets in (1, 9):
        solver = et.plugins.solver("hebt-sirt")(alpha=alpha, ratios=ratios, iterations=2, subsets=subsets)
        maps = np.moveaxis(solver.solve(series).data, 0, 2).astype(np.float64)  # (nz, nx, lines, slices)
        projected = projector.forward(maps)  # W X_A: (tilts, positions, lines, slices)
        eds = [(1 - alpha) * (projected[:, :, k] - ratios[c] * series.channel(c)) for k, c in enumerate(ratios)]
        haadf = alpha * (projected.sum(axis=2) - series.channel(et.HAADF))
        misfit[subsets] = np.sqrt(sum(np.sum(e**2) for e in eds) + np.sum(haadf**2))
    assert misfit[9] < 0.3 * misfit[1]  # 440 against 1850 here; SIRT needs about 50 iterations for it
    with pytest.raises(InputError, match="subsets: 10 is more than the 9 tilt angles"):
        et.plugins.solver("hebt-sirt")(subsets=10, iterations=1).solve(series)


def test_random_ordering_follows_its_seed_in_sirt_and_hebt():
    """Both SIRT-type solvers deal the tilts by one rule: ``ordering='random'`` is drawn from ``seed``."""
    series = solver_test_series(slices=1)
    for name, options in (("sirt", {}), ("hebt-sirt", {"ratios": RATIOS, "alpha": 0.5})):
        solve = et.plugins.solver(name)

        def volume(seed, solve=solve, options=options):
            return solve(iterations=2, subsets=4, ordering="random", seed=seed, **options).solve(series).data

        np.testing.assert_array_equal(volume(0), volume(0))
        assert not np.array_equal(volume(0), volume(1)), name
