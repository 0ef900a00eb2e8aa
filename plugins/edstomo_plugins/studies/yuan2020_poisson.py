"""The ``poisson-tv`` and ``fused`` rows of the ``yuan2020-phantom`` study (beyond the paper).

Both solvers run with their default rules (docs/poisson-tv.md; nothing is
chosen with the phantom): ``poisson-tv`` on the raw EDS counts, ``fused`` on the
raw counts and the HAADF with the response ratios the study fitted for HEBT
(eq. 15, filtered sinograms).  Their maps are on the EDS scale and are
quantified by the ``eds`` quantifier (eq. 12), with the same metrics as the
paper's methods; the rows have ``method`` = the solver's name, ``alpha`` empty,
``regularization`` = the multiplier of the TV rule and ``n`` = the PDHG
iterations.  With the study's ``auto`` option each solver also runs at every
multiplier of :data:`~edstomo_plugins.solvers.poisson.REGULARIZATION_CANDIDATES`
(the sweep whose best, chosen with the truth, is the oracle of
``auto_over_oracle``); the summary keys are those of the default rule (1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edstomo.algorithms import IterationState
from edstomo.data import TiltSeries
from edstomo.preprocessing import ResponseRatios
from edstomo.registry import plugins
from edstomo.study import ResultsTable, interior

from ..solvers.poisson import REGULARIZATION_CANDIDATES
from .yuan2020_results import EROSION, LevelResult

__all__ = ["POISSON_SOLVERS", "POISSON_SUMMARY_KEYS", "poisson_summary", "run_poisson_solvers"]

#: The multiplier of the default TV rule (the summary's rows).
DEFAULT_REGULARIZATION = 1.0
#: The solvers run, with the prefix of their summary keys.
POISSON_SOLVERS: dict[str, str] = {"poisson-tv": "poisson_tv", "fused": "fused"}
#: The summary keys added to each level of ``yuan2020-phantom``.
POISSON_SUMMARY_KEYS: tuple[str, ...] = (
    "poisson_tv_ssim_quant_Ag", "fused_ssim_quant_Ag",
    "poisson_tv_core_wt_Au", "poisson_tv_shell_wt_Ag", "fused_core_wt_Au", "fused_shell_wt_Ag",
)  # fmt: skip


def run_poisson_solvers(
    study: Any,
    series: TiltSeries,
    ratios: ResponseRatios,
    recorder: Any,
    result: LevelResult,
    quantifier: Any,
    report: Callable[[str, int, int], None],
) -> None:
    """Run both solvers on one level's series and record their rows and snapshots."""
    lines = [line for line in series.channels if line != "HAADF"]
    inputs = {
        "poisson-tv": (series.select(lines), {}),
        "fused": (series, {"ratios": ratios}),
    }
    multipliers = REGULARIZATION_CANDIDATES if study.options.auto else (DEFAULT_REGULARIZATION,)
    for name, (data, options) in inputs.items():
        for multiplier in multipliers:
            solver = plugins.solver(name)(projector=study.projector, regularization=multiplier, **options)
            stage = f"{result.level}: {name}" + ("" if multiplier == DEFAULT_REGULARIZATION else f" x{multiplier:g}")

            def progress(state: IterationState, stage: str = stage, total: int = solver.iterations) -> None:
                report(stage, state.iteration, total)

            volume = solver.solve(data, callbacks=progress)
            snapshot = recorder.record(name, None, solver.iterations, volume, quantifier, regularization=multiplier)
            if multiplier == DEFAULT_REGULARIZATION:
                result.poisson[name] = snapshot


def poisson_summary(result: LevelResult, table: ResultsTable) -> dict[str, float]:
    """The summary keys of both solvers: quantified Ag SSIM, core Au and shell Ag (wt%, 3-px eroded)."""
    core = interior(result.regions["core"], EROSION)
    shell = interior(result.regions["shell"], EROSION)
    summary: dict[str, float] = {}
    for name, prefix in POISSON_SOLVERS.items():
        quantified = result.poisson[name].quantified
        if quantified is None:
            raise ValueError(f"{result.level}: the ESF method found no particle plateau in the {name} maps")
        rows = table.where(
            level=result.level, method=name, regularization=DEFAULT_REGULARIZATION, maps="quantified", element="Ag"
        )
        summary[f"{prefix}_ssim_quant_Ag"] = float(rows[0]["ssim_structure"])
        summary[f"{prefix}_core_wt_Au"] = 100.0 * float(quantified.fraction("Au")[core].mean())
        summary[f"{prefix}_shell_wt_Ag"] = 100.0 * float(quantified.fraction("Ag")[shell].mean())
    return {key: summary[key] for key in POISSON_SUMMARY_KEYS}
