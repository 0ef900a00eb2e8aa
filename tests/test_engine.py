"""The solver engine and algorithms: fast vs generic paths, FBP, OS-SART, CGLS, callbacks, options."""

from __future__ import annotations

import logging

import edstomo as et
import numpy as np
import pytest
from edstomo.algorithms import CGLS, SART, Checkpoint, EarlyStopping, History, ProgressBar, angle_subsets
from edstomo.errors import InputError, OptionError
from edstomo.operators import MatrixOperator, ParallelBeamProjector
from edstomo.options import describe, parse_assignment
from edstomo.testing import solver_test_series
from edstomo_plugins.solvers.hebt import hebt_operator

ANGLES = np.deg2rad(np.linspace(-70.0, 70.0, 11))
W = ParallelBeamProjector(ANGLES, (16, 16), dtype="float64")


def _maps(channels: int = 2, slices: int = 3, seed: int = 0) -> np.ndarray:
    z, x = np.mgrid[:16, :16] - 7.5
    disk = (z**2 + x**2 <= 6.0**2)[:, :, None, None]
    return np.random.default_rng(seed).random((16, 16, channels, slices)) * disk


# ------------------------------------------------------------------ fast path == generic path
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("system", ["sirt", "hebt"])
def test_fused_kernel_path_equals_the_generic_operator_path(dtype, system):
    projector = ParallelBeamProjector(ANGLES, (16, 16), dtype=dtype)
    operator = projector if system == "sirt" else hebt_operator(projector, 2, 0.8)
    truth = _maps().astype(dtype)
    data = operator.forward(truth)
    data = data + 0.05 * np.random.default_rng(1).standard_normal(data.shape).astype(dtype)
    runs = {}
    for fast in (True, False):
        x = np.zeros_like(truth)
        SART(operator, data, x, max_iterations=15, fast=fast).run()
        runs[fast] = x
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    scale = np.abs(runs[False]).max()
    np.testing.assert_allclose(runs[True], runs[False], rtol=0, atol=tolerance * scale)


# ------------------------------------------------------------------ OS-SART
def test_one_subset_is_sirt_bit_for_bit():
    series = solver_test_series()
    sirt = et.plugins.solver("sirt")(iterations=7).solve(series)
    sart = et.plugins.solver("sart")(iterations=7, subsets=1).solve(series)
    np.testing.assert_array_equal(sart.data, sirt.data)


def test_one_angle_per_subset_is_textbook_sart():
    """x ← max(0, x + λ C_a W_aᵀ R_a (b_a − W_a x)) for each angle a in turn, on the explicit matrix."""
    truth = _maps(1, 1)
    b = W.forward(truth)
    dense = W.matrix.toarray().reshape(len(ANGLES), 16, -1)
    x_ref = np.zeros(256)
    order = angle_subsets(len(ANGLES), len(ANGLES), "interleaved")
    for _ in range(4):
        for (a,) in order:
            wa = dense[a]
            rows, cols = wa.sum(axis=1), wa.sum(axis=0)
            r = np.divide(1, rows, out=np.zeros_like(rows), where=rows > 0)
            c = np.divide(1, cols, out=np.zeros_like(cols), where=cols > 0)
            x_ref = np.maximum(0.0, x_ref + c * (wa.T @ (r * (b[a, :, 0, 0] - wa @ x_ref))))
    x = np.zeros_like(truth)
    SART(W, b, x, subsets=order, max_iterations=4).run()
    np.testing.assert_allclose(x.ravel(), x_ref, rtol=1e-10, atol=1e-12)


def test_ordered_subsets_converge_faster_than_sirt_per_pass():
    """Four subsets: the error after 5 passes takes SIRT more than 4 × as many iterations."""
    truth = _maps(1, 2)
    b = W.forward(truth)
    errors = {}
    for subsets, passes in ((1, 40), (4, 5)):
        x = np.zeros_like(truth)
        curve = []
        SART(W, b, x, subsets=angle_subsets(len(ANGLES), subsets), max_iterations=passes).run(
            callbacks=lambda state, curve=curve: curve.append(np.linalg.norm(state.algorithm.x - truth))
        )
        errors[subsets] = np.array(curve)
    assert not np.any(errors[1][:20] <= errors[4][-1])


@pytest.mark.parametrize("ordering", ["interleaved", "sequential", "random"])
def test_subsets_partition_the_angles(ordering):
    parts = angle_subsets(31, 6, ordering, seed=3)
    assert len(parts) == 6 and sorted(np.concatenate(parts).tolist()) == list(range(31))


def test_bad_subsets():
    with pytest.raises(InputError, match="subsets"):
        angle_subsets(5, 6)
    with pytest.raises(InputError, match="more than the 9 tilt angles"):
        et.plugins.solver("sart")(subsets=10).solve(solver_test_series())
    with pytest.raises(OptionError, match="'ordering' = 'spiral'"):
        et.plugins.solver("sart")(ordering="spiral")


# ------------------------------------------------------------------ CGLS
def test_cgls_reaches_the_normal_equations_solution_on_a_small_system():
    rng = np.random.default_rng(4)
    matrix = rng.random((12, 5))
    b = rng.random((12, 3))
    x = np.zeros((5, 3))
    algorithm = CGLS(MatrixOperator(matrix), b, x, max_iterations=5)
    algorithm.run()
    exact = np.linalg.solve(matrix.T @ matrix, matrix.T @ b)
    np.testing.assert_allclose(x, exact, rtol=1e-8)
    assert algorithm.should_stop() or algorithm.iteration == 5


def test_cgls_columns_are_independent_and_converged_columns_stop():
    rng = np.random.default_rng(5)
    matrix = rng.random((10, 4))
    b = np.stack([matrix @ rng.random(4), np.zeros(10), rng.random(10)], axis=1)
    x = np.zeros((4, 3))
    CGLS(MatrixOperator(matrix), b, x, max_iterations=8).run()
    assert not x[:, 1].any()  # a zero column stays zero (no division by 0)
    alone = np.zeros((4, 1))
    CGLS(MatrixOperator(matrix), b[:, 2:], alone, max_iterations=8).run()
    np.testing.assert_allclose(x[:, 2:], alone, rtol=1e-10)


def test_cgls_solver_clips_only_when_asked():
    series = solver_test_series()
    free = et.plugins.solver("cgls")(iterations=8).solve(series)
    clipped = et.plugins.solver("cgls")(iterations=8, nonnegativity=True).solve(series)
    assert free.data.min() < 0
    np.testing.assert_array_equal(clipped.data, np.maximum(free.data, 0))


# ------------------------------------------------------------------ FBP
@pytest.mark.parametrize("filter_name", ["ram-lak", "shepp-logan", "cosine", "hamming", "hann"])
def test_fbp_of_complete_noise_free_data_is_close_to_the_truth(filter_name):
    n = 96
    z, x = np.mgrid[:n, :n] - (n - 1) / 2
    truth = ((z**2 + x**2) < 30**2) + ((z - 8) ** 2 + (x + 10) ** 2 < 8**2) * 1.0
    angles = np.arange(0.0, 180.0, 1.0)
    projector = ParallelBeamProjector(np.deg2rad(angles), (n, n), dtype="float64")
    series = et.TiltSeries(
        projector.forward(truth[..., None])[None], ["Ag_La"], et.ureg.Quantity(angles, "deg"), et.ureg.Quantity(1, "nm")
    )
    volume = et.plugins.solver("fbp")(filter=filter_name, dtype="float64", nonnegativity=False).solve(series)
    error = np.linalg.norm(volume.data[0, ..., 0] - truth) / np.linalg.norm(truth)
    assert error < (0.13 if filter_name == "ram-lak" else 0.2)
    inner = (z**2 + x**2) < 20**2
    inner &= (z - 8) ** 2 + (x + 10) ** 2 > 12**2
    assert volume.data[0, ..., 0][inner].mean() == pytest.approx(1.0, abs=0.01)


def test_fbp_limited_tilt_range_is_worse_than_sirt():
    series = solver_test_series(slices=1, size=24, tilts=21)
    truth_like = et.plugins.solver("sirt")(iterations=400, dtype="float64").solve(series).data
    fbp = et.plugins.solver("fbp")(dtype="float64").solve(series).data
    assert np.linalg.norm(fbp - truth_like) > 0.05 * np.linalg.norm(truth_like)
    assert fbp.min() >= 0  # clipped by default


# ------------------------------------------------------------------ callbacks
def test_early_stopping_history_and_resume_from_a_checkpoint(tmp_path):
    series = solver_test_series()
    history = History(keep=[2])
    stop = EarlyStopping(rtol=0.05, patience=2)
    volume = et.plugins.solver("sirt")(iterations=200).solve(series, callbacks=[history, stop])
    run = volume.provenance[-1]["parameters"]["iterations_run"]
    assert stop.stopped_at == run < 200 and history.iterations == list(range(1, run + 1))
    assert np.all(np.diff(history.residuals) < 0) and set(history.estimates) == {2}
    path = tmp_path / "checkpoint.h5"
    sirt = et.plugins.solver("sirt")(iterations=10)
    checkpoint = Checkpoint(path, every=4)
    sirt.solve(series, callbacks=checkpoint)
    assert checkpoint.saved == [4, 8, 10]
    resumed = sirt.with_options(iterations=5).solve(series, initial=et.load(path))
    straight = sirt.with_options(iterations=15).solve(series)
    np.testing.assert_allclose(resumed.data, straight.data, rtol=1e-5, atol=1e-5 * straight.data.max())


def test_progress_bar_logs_quiet_lines_without_a_terminal(caplog):
    series = solver_test_series()
    with caplog.at_level(logging.INFO, logger="edstomo.progress"):
        et.plugins.solver("sirt")(iterations=20).solve(series, callbacks=ProgressBar("test", every=0.5, seconds=0))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("test: 10/20 iterations (50 %)") and lines[-1].startswith("test: 20/20")
    assert "it/s" in lines[-1] and "ETA" in lines[-1]


def test_state_gives_a_volume_and_run_can_continue():
    series = solver_test_series()
    seen = []
    et.plugins.solver("sirt")(iterations=2).solve(series, callbacks=lambda s: seen.append(s.volume()))
    assert [v.shape for v in seen] == [(2, 12, 12, 4)] * 2
    x = np.zeros((16, 16, 1, 1))
    algorithm = SART(W, W.forward(_maps(1, 1)), x, max_iterations=3)
    algorithm.run()
    algorithm.run(2)
    assert algorithm.iteration == 5 and len(algorithm.history["residual"]) == 5
    with pytest.raises(InputError, match="no Volume form"):
        algorithm.state().volume()


# ------------------------------------------------------------------ options
def test_options_are_described_with_types_bounds_defaults_and_units():
    rows = {row.name: row for row in describe(et.plugins.phantom("core-shell").Options)}
    assert rows["outer_radius"].type == "quantity in nm" and rows["outer_radius"].default == "'55 nm'"
    assert rows["supersample"].type == "int (>= 1)"
    assert rows["dimension"].type == "2 | 3"
    sart = {row.name: row for row in describe(et.plugins.solver("sart").Options)}
    assert sart["subsets"].type == "int (>= 1) | None"  # the bound is the number's, not None's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iterations=50", ("iterations", 50)),
        ("threshold=1e30", ("threshold", 1e30)),
        ("nonnegativity=false", ("nonnegativity", False)),
        ("channels=[Ag_La, Au_Ma]", ("channels", ["Ag_La", "Au_Ma"])),
        ("ratios={Ag_La: 805}", ("ratios", {"Ag_La": 805})),
        ("solid-angle=0.7 sr", ("solid_angle", "0.7 sr")),
        ("ratios=", ("ratios", None)),
    ],
)
def test_assignments_are_read_as_yaml(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iterations": "5"}, r"solver 'sirt': option 'iterations' = '5': text is not a number"),
        ({"iterations": True}, "a boolean is not accepted here"),
        ({"nonnegativity": 1}, r"'nonnegativity' = 1: expected true or false"),
        ({"iteration": 5}, r"'iteration' = 5: not an option of solver 'sirt'; its options are \["),
        ({"dtype": "float16"}, r"'dtype' = 'float16': expected 'float32' \| 'float64'"),
    ],
)
def test_bad_options_name_plugin_option_value_and_type(options, message):
    with pytest.raises(OptionError, match=message):
        et.plugins.solver("sirt")(**options)


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize(
    ("solver", "options"),
    [("fbp", ["--set", "filter=hann"]), ("sart", ["--set", "subsets=3", "--set", "iterations=4"]),
     ("cgls", ["--set", "iterations=5"])],
)  # fmt: skip
def test_new_solvers_run_from_the_command_line(tmp_path, solver, options):
    from edstomo.cli import main

    series = solver_test_series()
    source = series.save(tmp_path / "s.h5")
    out = tmp_path / "v.h5"
    argv = ["solve", str(source), "--out", str(out), "--solver", solver, *options, "--chunk-slices", "2"]
    assert main([*argv, "--workers", "1", "--no-progress"]) == 0
    volume = et.load(out)
    expected = et.plugins.solver(solver)(**dict(parse_assignment(o) for o in options[1::2])).solve(series)
    np.testing.assert_allclose(volume.data, expected.data, rtol=1e-5, atol=1e-6 * np.abs(expected.data).max())
    assert next(s for s in volume.provenance if s["action"] == "reconstruct")["plugin"] == solver


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--solver", "fbp", "--set", "iterations=5"], "'iterations' = 5: not an option of solver 'fbp'"),
        (["--solver", "sart", "--set", "relaxation=2.5"], "'relaxation' = 2.5: expected float (> 0, < 2)"),
        (["--solver", "cgls", "--set", "dtype=half"], "'dtype' = 'half': expected 'float32' | 'float64'"),
        (["--set", "sirt.iterations=5"], "'sirt' is not a plugin slot of this command"),
    ],
)
def test_solver_options_are_checked_on_the_command_line(tmp_path, capsys, argv, message):
    from edstomo.cli import main

    source = solver_test_series().save(tmp_path / "s.h5")
    assert main(["solve", str(source), "--out", str(tmp_path / "v.h5"), *argv]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "v.h5").exists()


def test_a_finished_solve_leaves_no_reference_cycle_holding_its_arrays():
    """The algorithm (estimate, work arrays) is freed when the solve returns, not at a later garbage-collector
    pass: repeated solves (bootstrap groups, absorption iterations) would otherwise pile up memory."""
    import gc
    import weakref

    seen = []
    series = solver_test_series(slices=2).select(["Ag_La"])
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        et.plugins.solver("sirt")(iterations=2).solve(series, callbacks=lambda s: seen.append(weakref.ref(s.algorithm)))
        assert seen and seen[-1]() is None
    finally:
        if enabled:
            gc.enable()


def test_predictions_during_a_run_reuse_the_kept_projection(monkeypatch):
    """A callback's prediction is the projection the iteration kept (same bits as W x), with no second product."""
    import edstomo as et
    from edstomo.operators import ParallelBeamProjector, projector_for
    from edstomo.testing import RATIOS, solver_test_series

    series = solver_test_series(tilts=9)
    projector = projector_for(series.angles.m_as("rad"), (12, 12), "strip", "float32")
    forward = ParallelBeamProjector.forward
    calls = []
    monkeypatch.setattr(ParallelBeamProjector, "forward", lambda self, x: calls.append(1) or forward(self, x))
    for name, options in (("sirt", {}), ("hebt-sirt", {"alpha": 0.8, "ratios": dict(RATIOS)})):
        products, predicted, expected = [], [], []

        def check(state, products=products, predicted=predicted, expected=expected):
            algorithm, before = state.algorithm, len(calls)
            predicted.append(np.array(algorithm.predict(algorithm.x)))
            products.append(len(calls) - before)
            expected.append(forward(projector, algorithm.x))

        et.plugins.solver(name)(iterations=4, **options).solve(series, callbacks=[check])
        scale = np.ones(2) if name == "sirt" else 1 / np.array(list(RATIOS.values()))
        for got, want in zip(predicted, expected):
            np.testing.assert_array_equal(got, want * scale.astype(np.float32)[None, None, :, None])
        assert products == [0, 0, 0, 1]  # the last iteration keeps no projection: its prediction is computed
