"""Work reused between equivalent solvers: HEBT at α = 0 is SIRT of r_A I_A.

A solver declares another solver whose maps, scaled per channel, are its own
(:meth:`~edstomo.engine.ReconstructionSolver.equivalent`). Then its maps are made
from the other's without solving (:meth:`reuse`, the pipeline's
:func:`reuse_in_slices`), and its automatic choice takes the other's scored run
instead of running it again (:func:`edstomo.selection.select`'s ``known``). These
tests check that the results are those of solving, and that nothing is reused
when anything differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from edstomo.algorithms import Callback
from edstomo.provenance import canonical
from edstomo.registry import plugins
from edstomo.selection import choose
from edstomo.stored import pieces
from edstomo.testing import solver_test_series
from edstomo_microscope.slicewise import crop_volume, pad_positions, reuse_in_slices, solve_in_slices

RATIOS = {"Ag_La": 3.0, "Au_Ma": 0.25}


@pytest.fixture(scope="module")
def series():
    return solver_test_series(slices=5, size=16, tilts=9, seed=3)


def _sirt(**options):
    return plugins.solver("sirt")(iterations=12, **options)


def _hebt(**options):
    return plugins.solver("hebt-sirt")(**{"iterations": 12, "alpha": 0.0, "ratios": RATIOS, **options})


def _reconstruct(volume):
    return next(step for step in reversed(volume.provenance) if step["action"] == "reconstruct")


def test_hebt_at_alpha_zero_made_from_sirt_equals_solving_it(series):
    sirt = _sirt().solve(series)
    hebt = _hebt()
    solved = hebt.solve(series)
    reused = hebt.reuse(series, sirt)
    assert reused is not None
    np.testing.assert_allclose(reused.data, solved.data, rtol=2e-5, atol=1e-6 * solved.data.max())
    np.testing.assert_allclose(reused.data[1], 0.25 * sirt.data[1], rtol=1e-7)  # r_A × SIRT's map of A
    assert (reused.factor, reused.quantity, reused.unit) == (solved.factor, solved.quantity, solved.unit)
    assert reused.data.dtype == solved.data.dtype == np.float32
    mine, theirs = _reconstruct(reused)["parameters"], _reconstruct(solved)["parameters"]
    assert mine["equivalent"] == {
        "solver": "sirt",
        "scales": RATIOS,
        "reason": "alpha = 0: eq. 17 is SIRT of r_A I_A (the HAADF row has weight 0)",
    }
    assert {k: v for k, v in mine.items() if k != "equivalent"} == theirs
    assert canonical(reused.provenance[:-1]) == canonical(series.provenance)


@pytest.mark.parametrize(
    "hebt, sirt",
    [
        ({"alpha": 0.5}, {}),  # the HAADF term counts
        ({"ratios": None}, {}),  # ratios fitted: no factor known before the solve
        ({"iterations": 11}, {}),
        ({"relaxation": 1.5}, {}),
        ({}, {"projector": "joseph"}),
        ({}, {"channels": ["Ag_La"]}),
        ({}, {"dtype": "float64"}),
        ({}, {"subsets": 3}),
    ],
)
def test_nothing_is_reused_when_any_option_differs(series, hebt, sirt):
    assert _hebt(**hebt).reuse(series, _sirt(**sirt).solve(series)) is None


def test_nothing_is_reused_from_other_data_or_a_run_stopped_early(series):
    sirt = _sirt().solve(series)
    other = series.with_step({"action": "scaled", "parameters": {"factor": 2}}, data=2 * series.data)
    assert _hebt().reuse(other, sirt) is None

    class StopAtFive(Callback):
        def on_step(self, state):
            return state.iteration >= 5

    stopped = _sirt().solve(series, callbacks=[StopAtFive()])
    assert _reconstruct(stopped)["parameters"]["iterations_run"] == 5
    assert _hebt().reuse(series, stopped) is None
    assert _hebt().reuse(series, _hebt().solve(series)) is None  # HEBT is not its own equivalent


def test_the_alpha_zero_candidate_takes_sirts_scored_run(series):
    selection = {"slices": 3, "max_iterations": 40}
    sirt = choose(plugins.solver("sirt")(iterations="auto", selection=selection), series)
    hebt = plugins.solver("hebt-sirt")(iterations="auto", alpha="auto", ratios=RATIOS, selection=selection)
    alone = choose(hebt, series).auto_choice
    helped = choose(hebt, series, known=[None, sirt.auto_choice]).auto_choice
    reused = [curve for curve in helped.curves if curve.reused]
    assert [(c.settings, c.reused) for c in reused] == [({"alpha": 0.0}, "sirt")]
    assert reused[0].score == sirt.auto_choice.curves[0].score
    fresh = next(curve for curve in alone.curves if curve.settings == {"alpha": 0.0})
    assert fresh.iterations == reused[0].iterations
    np.testing.assert_allclose(fresh.score, reused[0].score, rtol=1e-5)  # the same run in float32
    assert helped.chosen == alone.chosen
    assert helped.iterations_run == alone.iterations_run - fresh.iterations[-1]
    record = helped.record()
    assert [c.get("reused_from") for c in record["curves"]] == ["sirt", None, None, None, None]
    assert record["data_digest"] == sirt.auto_choice.data_digest != ""


@pytest.mark.parametrize(
    "change",
    ["seed", "slices", "data", "preprocess"],
)
def test_a_scored_run_is_not_taken_from_another_setting(series, change):
    selection = {"slices": 3, "max_iterations": 30}
    data = series
    sirt = choose(plugins.solver("sirt")(iterations="auto", selection=selection), series)
    if change in ("seed", "slices"):
        selection = {**selection, change: 1 if change == "seed" else 4}
    elif change == "data":
        data = series.replace(data=series.data * 1.5)
    hebt = plugins.solver("hebt-sirt")(iterations="auto", alpha="auto", ratios=RATIOS, selection=selection)
    preprocess = (lambda s: s) if change == "preprocess" else None
    helped = choose(hebt, data, known=[sirt.auto_choice], preprocess=preprocess).auto_choice
    assert not any(curve.reused for curve in helped.curves)


@pytest.mark.parametrize("chunk_slices", [2, 8])
@pytest.mark.parametrize("in_file", [False, True])
def test_reuse_in_slices_equals_solving_in_slices(series, tmp_path, chunk_slices, in_file):
    width = 3
    padded = pad_positions(series, width)
    path = (lambda name: tmp_path / f"{name}.h5") if in_file else (lambda name: None)
    sirt = solve_in_slices(_sirt(), padded, width, series.experiment, chunk_slices=2, path=path("sirt"))
    reused = reuse_in_slices(_hebt(), padded, pieces(sirt), chunk_slices=chunk_slices, path=path("hebt"))
    solved = crop_volume(_hebt().solve(padded), width, series.experiment)
    reused = pieces(reused).load()
    np.testing.assert_allclose(reused.data, solved.data, rtol=2e-5, atol=1e-6 * solved.data.max())
    assert [s["action"] for s in reused.provenance][-2:] == ["reconstruct", "crop_to_field"]
    assert reused.factor == "z_A" and reused.experiment.scan.positions == series.n_positions
    assert reuse_in_slices(_hebt(alpha=0.8), padded, pieces(sirt), path=None) is None
    assert reuse_in_slices(_hebt(), series, pieces(sirt), path=None) is None  # not the padded series it came from
