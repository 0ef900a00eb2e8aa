"""The figure of an automatic choice: held-out deviance against the iteration count, one curve per setting
(or, when the iteration count is not chosen, against the settings tried)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import figures
from .selection import SelectionResult


def selection_figure(result: SelectionResult, path: str | Path, title: str = "") -> Path:
    """Plot every curve of ``result`` (mean held-out deviance per datum vs n, log n) and mark the choice.

    When n is not chosen (each setting scored at one n, e.g. a TV weight), the
    deviance is drawn against the setting instead: against the value of a single
    numeric option (log axis), or one point per setting, with each split's score.

    Parameters
    ----------
    result : SelectionResult
        From :func:`edstomo.selection.select` (or a solver's ``auto_choice``).
    path : path
        The PNG to write (150 dpi, with its description; see :func:`edstomo.figures.save`).
    title : str
        Figure title (e.g. the solver and the data).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), dpi=figures.DPI, layout="constrained")
    ax: Any = figure.subplots()
    if "iterations" in result.chosen:
        _along_iterations(ax, result)
    else:
        _over_settings(ax, result)
    ax.set_yscale("log")
    ax.set_ylabel("held-out Poisson deviance per datum")
    ax.legend(fontsize=7)
    chosen = ", ".join(f"{k} = {v}" for k, v in result.chosen.items())
    ax.set_title(title or "automatic choice", fontsize=9)
    figures.caption(
        figure,
        f"{result.splits} binomial thinning(s), fit fraction {result.fraction:g}, seed {result.seed}; "
        f"chosen: {chosen}" + ("" if result.exact_counts else "; data rounded to counts (approximate thinning)"),
    )
    return figures.save(figure, path)


def _along_iterations(ax: Any, result: SelectionResult) -> None:
    """One curve per setting against n (log), the chosen n marked on the chosen setting's curve."""
    chosen_settings = {k: v for k, v in result.chosen.items() if k != "iterations"}
    for curve in result.curves:
        label = ", ".join(f"{k} = {v:g}" for k, v in curve.settings.items()) or "deviance"
        ax.plot(curve.iterations, curve.score, lw=1.2, label=label)
    n = result.chosen["iterations"]
    best = next(c for c in result.curves if all(c.settings.get(k) == v for k, v in chosen_settings.items()))
    if n in best.iterations:
        ax.plot([n], [best.score[best.iterations.index(n)]], "ko", ms=5, label=f"chosen n = {n}")
    ax.set_xscale("log")
    ax.set_xlabel("iterations n")


def _over_settings(ax: Any, result: SelectionResult) -> None:
    """The last score of each setting (mean and per split) against the setting; the chosen one marked."""
    names = list(result.curves[0].settings)
    values = [curve.settings[name] for curve in result.curves for name in names]
    numeric = len(names) == 1 and all(isinstance(v, (int, float)) and v > 0 for v in values)
    x = values if numeric else list(range(len(result.curves)))
    mean = [curve.score[-1] for curve in result.curves]
    splits = [[split[-1] for split in curve.per_split] for curve in result.curves]
    for k in range(len(splits[0])):
        ax.plot(x, [s[k] for s in splits], ".", color="0.6", ms=4, label="each split" if k == 0 else None)
    ax.plot(x, mean, "-o", lw=1.2, ms=4, label="mean over the splits")
    index = next(
        i for i, curve in enumerate(result.curves) if all(result.chosen.get(k) == v for k, v in curve.settings.items())
    )
    ax.plot([x[index]], [mean[index]], "ko", ms=7, mfc="none", label="chosen")
    if numeric:
        from matplotlib.ticker import NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())  # only the values tried are labelled
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel(names[0])
    else:
        ax.set_xticks(x, [", ".join(f"{k} = {v}" for k, v in c.settings.items()) for c in result.curves], fontsize=7)
        ax.set_xlabel("setting")
