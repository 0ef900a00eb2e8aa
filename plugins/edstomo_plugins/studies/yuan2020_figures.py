"""Figures of the ``yuan2020-phantom`` study, equivalent to the paper's Figures 1–13 (PNG, matplotlib).

matplotlib is an optional dependency (the ``plots`` extra); it is imported only
here and only when figures are drawn. Figures are built with
:class:`matplotlib.figure.Figure` directly, so no pyplot state or GUI backend
is involved. They follow :mod:`edstomo.figures`: maps with a scale bar (or
axes in nm), sinograms with axes in nm and degrees, one labelled colour bar
per row of maps whose limits are stated in the row's captions, 150 dpi.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edstomo import figures
from edstomo.study import ResultsTable

from .yuan2020_results import (
    FIGURE_EDS_N,
    FIGURE_HEBT_ALPHAS,
    FIGURE_HEBT_FIXED_ALPHA,
    FIGURE_HEBT_N,
    HAADF_ITERATIONS,
    HEADLINE_ALPHA,
    HEADLINE_N,
    LevelResult,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


_ELEMENTS = ("Ag", "Au")
_STYLE = {"Ag": "-", "Au": "--"}


def require_matplotlib() -> None:
    """Raise a clear ImportError when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "figures need matplotlib: pip install 'edstomo[plots]', or run without figures (--no-figures)"
        ) from error


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=figures.DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    return figures.save(figure, path)


def _map_grid(
    path: Path,
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    title: str,
    shared: bool,
    pixel_nm: float,
    quantity: str,
) -> Path:
    """A grid of maps (x–z slices): one row per element, one column per setting.

    ``shared``: one colour scale 0–1 for every row (weight fractions); else each
    row from its minimum to its maximum. Each row has one colour bar labelled
    ``"<row> <quantity>"``; the limits are stated in the figure's caption.
    """
    from matplotlib.colors import Normalize

    columns = max(len(cells) for _, cells in rows)
    figure = _figure(2.4 * columns + 1.0, 2.5 * len(rows) + 0.7)
    axes = figure.subplots(len(rows), columns, squeeze=False)
    statements = []
    for r, (label, cells) in enumerate(rows):
        values = np.concatenate([image.ravel() for _, image in cells])
        low, high = (0.0, 1.0) if shared else (float(values.min()), float(values.max()))
        high = high if high > low else low + 1.0
        norm = Normalize(vmin=low, vmax=high)
        statements.append(f"{label} {low:.3g}–{high:.3g}")
        shown = None
        for c, (caption, image) in enumerate(cells):
            shown = figures.image_panel(
                axes[r, c], image, pixel_nm, norm=norm, title=f"{label}, {caption}", xlabel="x", ylabel="z"
            )
        for c in range(len(cells), columns):
            axes[r, c].axis("off")
        if shown is not None:
            figures.colour_bar(figure, shown, axes[r, :].tolist(), f"{label} {quantity}", shrink=0.85)
    figure.suptitle(title, fontsize=10)
    scope = "0–1 for every row" if shared else "each row from its minimum to its maximum"
    figures.caption(figure, f"colour scales ({scope}): {'; '.join(statements)}; voxel {pixel_nm:.3g} nm")
    return _save(figure, path)


def _curves(
    path: Path,
    table: ResultsTable,
    criteria: dict[str, Any],
    x: str,
    metrics: Sequence[tuple[str, str]],
    title: str,
    groups: Sequence[tuple[str, dict[str, Any]]] = (("", {}),),
    references: dict[tuple[str, str], float] | None = None,
    log_x: bool = False,
) -> Path:
    """Metric curves against ``x`` (n or α), one line per element and group; optional horizontal references."""
    figure = _figure(5.2 * len(metrics), 3.6)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    colours = ["tab:green", "tab:blue", "tab:red", "tab:purple", "tab:orange", "tab:brown"]
    for ax, (metric, label) in zip(axes, metrics):
        for index, (group, extra) in enumerate(groups):
            for element in _ELEMENTS:
                rows = table.where(**criteria, **extra, element=element)
                xs = np.array([row[x] for row in rows], dtype=float)
                ys = np.array([np.nan if row[metric] is None else row[metric] for row in rows], dtype=float)
                order = np.argsort(xs)
                name = f"{element} {group}".strip()
                ax.plot(xs[order], ys[order], _STYLE[element], color=colours[index % len(colours)], label=name)
        for (element, ref_metric), value in (references or {}).items():
            if ref_metric == metric:
                ax.axhline(value, color="gold", linestyle=_STYLE[element], label=f"{element} EDS-only best")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("number of iterations n" if x == "n" else "α (weight of the HAADF term)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _eds_best(table: ResultsTable, level: str, maps: str) -> dict[tuple[str, str], float]:
    """The best EDS-only value of each metric (max SSIM-structure, min MSE) by element: the paper's yellow lines."""
    mse = "mse_scaled" if maps == "raw" else "mse"
    best = {}
    for element in _ELEMENTS:
        criteria = {"level": level, "method": "eds-sirt", "maps": maps, "element": element}
        best[(element, "ssim_structure")] = table.best("ssim_structure", **criteria)["ssim_structure"]
        best[(element, mse)] = table.best(mse, maximise=False, **criteria)[mse]
    return best


def write_figures(
    result: LevelResult,
    table: ResultsTable,
    folder: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Draw the study's figures for one dose level into ``folder``; returns the paths written."""
    require_matplotlib()
    folder = Path(folder)
    level = result.level
    lines = list(result.filtered.lines)
    ns = sorted({n for _, n in result.hebt})
    draws: list[Callable[[], Path]] = []

    def add(draw: Callable[[], Path]) -> None:
        draws.append(draw)

    def slice0(array: np.ndarray) -> np.ndarray:
        return array[..., array.shape[-1] // 2]

    pixel = float(result.truth.pixel_size.m_as("nm"))
    raw_unit = "X_A (arb. units)"
    fraction = "weight fraction"

    def raw_rows(snapshots: Sequence[tuple[str, Any]]) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
        return [
            (element, [(caption, slice0(s.raw.channel(line))) for caption, s in snapshots])
            for element, line in zip(_ELEMENTS, lines)
        ]

    def quantified_rows(snapshots: Sequence[tuple[str, Any]]) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
        usable = [(caption, s) for caption, s in snapshots if s.quantified is not None]
        return [
            (element, [(caption, slice0(s.quantified.fraction(element))) for caption, s in usable])
            for element in _ELEMENTS
        ]

    truth = result.truth
    add(
        lambda: _map_grid(
            folder / "fig01_phantom.png",
            [(element, [("weight fraction", slice0(truth.fraction(element)))]) for element in _ELEMENTS],
            "Figure 1: phantom weight fractions",
            True,
            pixel,
            fraction,
        )
    )
    add(lambda: _sinograms(folder / "fig02_sinograms.png", result))
    eds = [(f"n = {n}", result.eds[n]) for n in FIGURE_EDS_N if n in result.eds]
    if eds:
        add(
            lambda: _map_grid(
                folder / "fig03_eds_maps.png", raw_rows(eds), "Figure 3: EDS-only SIRT maps X_A", False, pixel, raw_unit
            )
        )
        add(
            lambda: _map_grid(
                folder / "fig05_eds_quantified.png",
                quantified_rows(eds),
                "Figure 5: EDS-only quantified weight fractions (eq. 12)",
                True,
                pixel,
                fraction,
            )
        )
    eds_criteria = {"level": level, "method": "eds-sirt"}
    add(
        lambda: _curves(
            folder / "fig04_eds_metrics.png",
            table,
            {**eds_criteria, "maps": "raw"},
            "n",
            [("ssim_structure", "SSIM structure"), ("mse_scaled", "MSE (scaled)")],
            "Figure 4: EDS-only SIRT, raw maps X_A",
            log_x=True,
        )
    )
    add(
        lambda: _curves(
            folder / "fig06_eds_quantified_metrics.png",
            table,
            {**eds_criteria, "maps": "quantified"},
            "n",
            [("ssim_structure", "SSIM structure"), ("mse", "MSE")],
            "Figure 6: EDS-only SIRT, quantified maps",
            log_x=True,
        )
    )
    add(
        lambda: _map_grid(
            folder / "fig07_haadf.png",
            [("HAADF", [(f"SIRT n = {HAADF_ITERATIONS}", slice0(result.haadf.channel("HAADF")))])],
            "Figure 7: HAADF-only reconstruction",
            False,
            pixel,
            "reconstruction (arb. units)",
        )
    )
    hebt_criteria = {"level": level, "method": "hebt-sirt"}
    groups = [(f"n = {n}", {"n": n}) for n in ns if n >= 100] or [(f"n = {n}", {"n": n}) for n in ns]
    add(
        lambda: _curves(
            folder / "fig08_hebt_metrics.png",
            table,
            {**hebt_criteria, "maps": "raw"},
            "alpha",
            [("ssim_structure", "SSIM structure"), ("mse_scaled", "MSE (scaled)")],
            "Figure 8: HEBT raw maps against α",
            groups,
            _eds_best(table, level, "raw"),
        )
    )
    by_alpha = [
        (f"α = {a:g}, n = {HEADLINE_N}", result.hebt[(a, HEADLINE_N)])
        for a in FIGURE_HEBT_ALPHAS
        if (a, HEADLINE_N) in result.hebt
    ]
    by_n = [
        (f"α = {FIGURE_HEBT_FIXED_ALPHA:g}, n = {n}", result.hebt[(FIGURE_HEBT_FIXED_ALPHA, n)])
        for n in FIGURE_HEBT_N
        if (FIGURE_HEBT_FIXED_ALPHA, n) in result.hebt
    ]
    if by_alpha:
        add(
            lambda: _map_grid(
                folder / "fig09_hebt_alpha_maps.png", raw_rows(by_alpha), "Figure 9: HEBT maps", False, pixel, raw_unit
            )
        )
        add(
            lambda: _map_grid(
                folder / "fig11_hebt_alpha_quantified.png",
                quantified_rows(by_alpha),
                "Figure 11: HEBT quantified weight fractions (eq. 18)",
                True,
                pixel,
                fraction,
            )
        )
    if by_n:
        add(
            lambda: _map_grid(
                folder / "fig10_hebt_n_maps.png", raw_rows(by_n), "Figure 10: HEBT maps", False, pixel, raw_unit
            )
        )
        add(
            lambda: _map_grid(
                folder / "fig12_hebt_n_quantified.png",
                quantified_rows(by_n),
                "Figure 12: HEBT quantified weight fractions (eq. 18)",
                True,
                pixel,
                fraction,
            )
        )
    add(
        lambda: _curves(
            folder / "fig13_hebt_quantified_metrics.png",
            table,
            {**hebt_criteria, "maps": "quantified"},
            "alpha",
            [("ssim_structure", "SSIM structure"), ("mse", "MSE")],
            "Figure 13: HEBT quantified maps against α",
            groups,
            _eds_best(table, level, "quantified"),
        )
    )
    if result.esf is not None:
        add(lambda: _esf(folder / "esf_threshold.png", result))
    written = []
    for index, draw in enumerate(draws, start=1):
        written.append(draw())
        if progress is not None:
            progress(index, len(draws))
    return written


def _sinograms(path: Path, result: LevelResult) -> Path:
    series, filtered = result.series, result.filtered
    lines = series.lines
    panels = [("a) HAADF", series.channel("HAADF"))]
    panels += [(f"{'bc'[i]}) {line}", series.channel(line)) for i, line in enumerate(lines)]
    panels += [(f"{'de'[i]}) {line}, Gaussian-filtered", filtered.channel(line)) for i, line in enumerate(lines)]
    figure = _figure(3.1 * len(panels), 3.4)
    axes = figure.subplots(1, len(panels))
    pixel = float(series.pixel_size.m_as("nm"))
    angles = series.angles.m_as("deg")
    step = float(np.median(np.diff(angles))) if angles.size > 1 else 1.0
    # rows are tilts (one pixel per tilt): the extent centres each row on its angle
    extent = (0.0, series.n_positions * pixel, angles[-1] + step / 2, angles[0] - step / 2)
    for ax, (title, sinogram) in zip(axes, panels):
        image = sinogram[..., sinogram.shape[-1] // 2]
        low, high = float(image.min()), float(image.max())
        shown = ax.imshow(
            image, aspect="auto", cmap="magma", interpolation="nearest", extent=extent, vmin=low, vmax=high
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("beam position (nm)")
        ax.set_ylabel("tilt angle (deg)")
        label = "detected electrons" if title.endswith("HAADF") else "counts"
        figures.colour_bar(figure, shown, ax, f"{label} ({low:.3g}–{high:.3g})", shrink=0.8)
    figure.suptitle(f"Figure 2: sinograms of the middle slice ({result.level} dose)", fontsize=10)
    return _save(figure, path)


def _esf(path: Path, result: LevelResult) -> Path:

    fit = result.esf
    figure = _figure(6.0, 3.8)
    ax = figure.subplots()
    ax.plot(fit.trials, fit.volumes, ".", markersize=3, color="tab:gray", label="V(t): voxels with S > t")
    fine = np.linspace(fit.trials[0], fit.trials[-1], 1000)
    ax.plot(fine, fit.model(fine), color="tab:blue", label="fit: two error-function steps")
    ax.axvline(fit.threshold, color="tab:red", linestyle=":", label=f"threshold {fit.threshold:.4g}")
    ax.set_xlabel("threshold t on S = Σ X_A / z_A")
    ax.set_ylabel("volume (voxels)")
    slope = ax.twinx()
    slope.plot(fine, -fit.slope(fine), color="tab:orange", alpha=0.6, label="|dV/dt| of the fit")
    slope.set_yscale("log")
    slope.set_ylabel("|dV/dt|")
    handles = ax.get_legend_handles_labels()[0] + slope.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7)
    ax.set_title(f"ESF threshold, HEBT α = {HEADLINE_ALPHA}, n = {HEADLINE_N} ({result.level} dose)", fontsize=10)
    return _save(figure, path)
