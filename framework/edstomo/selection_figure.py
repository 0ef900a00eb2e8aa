"""The figure of an automatic choice: held-out deviance against the iteration count, one curve per setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import figures
from .selection import SelectionResult


def selection_figure(result: SelectionResult, path: str | Path, title: str = "") -> Path:
    """Plot every curve of ``result`` (mean held-out deviance per datum vs n, log n) and mark the choice.

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
    chosen_settings = {k: v for k, v in result.chosen.items() if k != "iterations"}
    for curve in result.curves:
        label = ", ".join(f"{k} = {v:g}" for k, v in curve.settings.items()) or "deviance"
        ax.plot(curve.iterations, curve.score, lw=1.2, label=label)
    n = result.chosen.get("iterations")
    if n is not None:
        best = next(c for c in result.curves if all(c.settings.get(k) == v for k, v in chosen_settings.items()))
        if n in best.iterations:
            ax.plot([n], [best.score[best.iterations.index(n)]], "ko", ms=5, label=f"chosen n = {n}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iterations n")
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
