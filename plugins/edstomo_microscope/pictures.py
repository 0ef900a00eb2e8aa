"""Pictures of tilt series and weight-fraction volumes (orthoslices, colour composites, a 3D view) and of the
spectrum fit of the line intensities.

Everything takes plain data (:class:`~edstomo.data.TiltSeries`,
:class:`~edstomo.data.CompositionMaps`). matplotlib draws the figures (imported
when one is made) through :mod:`edstomo.figures`: every image has a scale bar
(``matplotlib-scalebar``) or axes in nm, every scalar image a labelled colour
bar, colour limits are stated on the figure, PNGs are written at 150 dpi
(SVG/PDF on request). :func:`view3d` can also hand the maps to pyvista when it
is installed (napari: :mod:`edstomo_microscope.viewer`).

Orientation of a volume ``(nz, nx, slices)``: ``z`` runs along the beam at 0°,
``x`` across the tilt axis, ``y`` (the slices) along it. The three orthoslices
are the ``x–y`` plane at one depth (the view of the 0° projection), the
``x–z`` plane of one slice (a tomographic slice) and the ``y–z`` plane at one
``x``. Methods shown in separate figures of one run (EDS-only SIRT, HEBT) are
cut at the same planes and drawn with the same colour limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edstomo import figures
from edstomo.data import HAADF, CompositionMaps, TiltSeries, Volume

from .alignment import centre_of_mass
from .export import quantity_of

__all__ = [
    "COLOURS",
    "COMPOSITE_PREFERENCE",
    "colour_composite",
    "colour_limits",
    "composite_elements",
    "composite_figure",
    "figures_from_folder",
    "orthoslice_figure",
    "pipeline_figures",
    "plane_indices",
    "spectrum_fit_figure",
    "tilt_figure",
    "view3d",
    "volume_figure",
    "volume_orthoslice_figure",
]

#: Colours (RGB in [0, 1]) given to elements in composites and 3D views, in order.
COLOURS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.15, 0.1),
    (0.1, 0.85, 0.2),
    (0.2, 0.4, 1.0),
    (1.0, 0.85, 0.1),
    (0.9, 0.2, 0.9),
    (0.1, 0.9, 0.9),
)

#: Elements preferred for composites: Fe and S (sulfides) against Si (silicates), then others.
COMPOSITE_PREFERENCE: tuple[str, ...] = ("Fe", "S", "Si", "Mg", "Ni", "Pt")

#: How the methods are named on figures.

#: Percentile of the particle's weight fractions where colour scales end (stated on every figure).
PERCENTILE = 99.5


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def plane_indices(maps: CompositionMaps, element: str | None = None) -> tuple[int, int, int]:
    """Default cut positions ``(z, x, slice)`` of the orthoslices.

    Without ``element``: the depth holding most particle voxels (the mid-plane
    of a section) and the particle's centre of mass across and along the tilt
    axis. With ``element``: the depth, x and slice where that element's weight
    fraction is concentrated (its largest sums), so the planes cut its rich regions.
    """
    weights = maps.particle_mask.astype(float) if element is None else maps.fraction(element)
    nz, nx, ny = weights.shape
    if not weights.any():
        return nz // 2, nx // 2, ny // 2
    z = int(np.argmax(weights.sum(axis=(1, 2))))
    if element is None:
        _, x, y = centre_of_mass(weights)
        return z, int(np.rint(x)), int(np.rint(y))
    return z, int(np.argmax(weights.sum(axis=(0, 2)))), int(np.argmax(weights.sum(axis=(0, 1))))


def _planes(volume: np.ndarray, cut: tuple[int, int, int]) -> list[tuple[str, np.ndarray, str, str]]:
    """(title, image, column axis, row axis) of the three orthoslices."""
    z, x, y = cut
    return [
        (f"x–y plane (z = {z})", volume[z].T, "x", "y, tilt axis"),  # rows y, columns x
        (f"x–z plane (slice {y})", volume[:, :, y], "x", "z, beam"),  # rows z, columns x
        (f"y–z plane (x = {x})", volume[:, x, :], "y, tilt axis", "z, beam"),  # rows z, columns y
    ]


def colour_limits(
    maps: Sequence[CompositionMaps], elements: Sequence[str], percentile: float | None = PERCENTILE
) -> dict[str, tuple[float, float, str]]:
    """Colour limits per element shared by several maps (methods): from 0 to the ``percentile``
    of the element's fractions inside the particles (None: the maximum), with the statement
    that goes on the figure (:func:`edstomo.figures.state_limits`)."""
    limits = {}
    for element in elements:
        inside = np.concatenate([m.fraction(element)[m.particle_mask] for m in maps]) if maps else np.zeros(0)
        if inside.size == 0:
            limits[element] = (0.0, 1.0, "0–1 (no particle voxel)")
            continue
        low, high, text = figures.state_limits(inside, percentile=percentile)
        limits[element] = (low, max(high, 1e-3), text)
    return limits


def orthoslice_figure(
    maps: CompositionMaps,
    elements: Sequence[str] | None = None,
    *,
    cut: tuple[int, int, int] | None = None,
    limits: Mapping[str, tuple[float, float, str]] | None = None,
    title: str = "",
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> Any:
    """Orthoslices of each element's weight fraction (one row per element, three planes).

    Parameters
    ----------
    maps : CompositionMaps
        The weight fractions.
    elements : list of str, optional
        Elements shown (default all).
    cut : (z, x, slice), optional
        Where the planes cut the volume (default :func:`plane_indices`).
    limits : {element: (low, high, statement)}, optional
        Colour limits (default :func:`colour_limits` of these maps); the
        statements are printed under the figure.
    title : str
        Figure title.
    path : str or Path, optional
        Save the figure there (PNG, plus ``formats``) and close it.
    formats : list of str
        Further formats besides PNG (``"svg"``, ``"pdf"``).
    dpi : int
        Resolution of the PNG (at least 150).

    Returns
    -------
    matplotlib Figure (or the PNG path when saved)
    """
    elements = list(elements) if elements is not None else maps.elements
    limits = dict(limits) if limits is not None else colour_limits([maps], elements)
    rows = {e: (maps.fraction(e), f"{e} weight fraction") for e in elements}
    fig = _orthoslices(rows, float(maps.pixel_size.m_as("nm")), cut or plane_indices(maps), limits, title)
    return _finish(fig, path, formats, dpi)


def volume_orthoslice_figure(
    volume: Volume,
    channels: Sequence[str] | None = None,
    *,
    cut: tuple[int, int, int] | None = None,
    title: str = "",
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> Any:
    """Orthoslices of reconstructed maps (one row per channel, each on its full range, the volume's unit)."""
    channels = list(channels) if channels is not None else volume.channels
    shape = volume.data.shape[1:]
    cut = cut or (shape[0] // 2, shape[1] // 2, shape[2] // 2)
    rows, limits = {}, {}
    for channel in channels:
        values = volume.channel(channel)
        low, high, text = figures.state_limits(values, low=min(0.0, float(values.min())))
        rows[channel] = (values, f"{channel}: {volume.quantity} ({volume.unit})")
        limits[channel] = (low, high, text)
    fig = _orthoslices(rows, float(volume.pixel_size.m_as("nm")), cut, limits, title)
    return _finish(fig, path, formats, dpi)


def _orthoslices(
    rows: Mapping[str, tuple[np.ndarray, str]],
    pixel: float,
    cut: tuple[int, int, int],
    limits: Mapping[str, tuple[float, float, str]],
    title: str,
) -> Any:
    """One row of three orthoslices per named volume, each row with its limits and labelled colour bar."""
    from matplotlib.colors import Normalize

    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(9.5, 2.6 * len(rows) + 0.9), squeeze=False, layout="constrained")
    for row, (name, (values, label)) in enumerate(rows.items()):
        low, high, _ = limits[name]
        norm = Normalize(vmin=low, vmax=high)  # one scale, one colour bar for the row's three planes
        shown = None
        for col, (plane, image, across, down) in enumerate(_planes(values, cut)):
            shown = figures.image_panel(
                axes[row, col],
                image,
                pixel,
                norm=norm,
                title=f"{name}: {plane}",
                xlabel=across,
                ylabel=down,
            )
        clipped = bool(values.max() > high)
        figures.colour_bar(fig, shown, axes[row, :].tolist(), label, clipped=clipped, shrink=0.9)
    statement = "; ".join(f"{name} {limits[name][2]}" for name in rows)
    fig.suptitle(f"{title} — voxel {pixel:.3g} nm".strip(" —"), fontsize=10)
    figures.caption(fig, f"colour scales: {statement}")
    return fig


def _finish(fig: Any, path: str | Path | None, formats: Sequence[str], dpi: int) -> Any:
    if path is None:
        return fig
    return figures.save(fig, path, formats=formats, dpi=dpi)


def colour_composite(
    images: Sequence[np.ndarray],
    colours: Sequence[tuple[float, float, float]] | None = None,
    *,
    percentile: float = PERCENTILE,
    tops: Sequence[float] | None = None,
) -> np.ndarray:
    """Additive colour composite of 2-D images (RGB, values in [0, 1]).

    Each image is divided by its ``tops`` value when given (shared scales across
    figures), else by its own ``percentile``, and clipped to [0, 1].
    """
    colours = list(colours or COLOURS)
    if len(images) > len(colours):
        raise ValueError(f"images: {len(images)} images but only {len(colours)} colours")
    if tops is not None and len(tops) != len(images):
        raise ValueError(f"tops: {len(tops)} values for {len(images)} images")
    rgb = np.zeros((*np.shape(images[0]), 3))
    for index, (image, colour) in enumerate(zip(images, colours)):
        image = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if tops is not None:
            top = float(tops[index])
        else:
            top = float(np.percentile(image, percentile)) if image.size else 0.0
        scaled = np.clip(image / top, 0.0, 1.0) if top > 0 else np.zeros_like(image)
        rgb += scaled[..., None] * np.asarray(colour)[None, None, :]
    return np.clip(rgb, 0.0, 1.0)


def composite_figure(
    maps: CompositionMaps,
    elements: Sequence[str],
    *,
    cut: tuple[int, int, int] | None = None,
    limits: Mapping[str, tuple[float, float, str]] | None = None,
    title: str = "",
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> Any:
    """Colour composite of a few elements' weight fractions on the three orthoslice planes.

    Each element's colour saturates at the upper end of its ``limits`` (default
    :func:`colour_limits` of these maps), named in the legend. The planes cut
    through the first element's rich region unless ``cut`` is given.
    """
    plt = _pyplot()
    elements = list(elements)
    cut = cut or plane_indices(maps, elements[0])
    limits = dict(limits) if limits is not None else colour_limits([maps], elements)
    tops = [limits[e][1] for e in elements]
    planes = [_planes(maps.fraction(e), cut) for e in elements]
    pixel = float(maps.pixel_size.m_as("nm"))
    fig, axes = plt.subplots(1, 3, figsize=(10, 4.2), layout="constrained")
    for index, ax in enumerate(axes):
        label, _, across, down = planes[0][index]
        rgb = colour_composite([p[index][1] for p in planes], tops=tops)
        figures.image_panel(ax, rgb, pixel, title=label, xlabel=across, ylabel=down)
    handles = [plt.Line2D([], [], color=c, lw=6) for c in COLOURS[: len(elements)]]
    names = [f"{e} (saturates at {limits[e][1]:.2g})" for e in elements]
    fig.legend(handles, names, loc="outside lower center", ncol=len(elements), frameon=False, fontsize=8)
    fig.suptitle(f"{title} — weight fractions, voxel {pixel:.3g} nm".strip(" —"), fontsize=10)
    return _finish(fig, path, formats, dpi)


def volume_figure(
    maps: CompositionMaps,
    elements: Sequence[str],
    *,
    levels: Sequence[float] | None = None,
    step: int = 2,
    title: str = "",
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> Any:
    """3D view with matplotlib: an iso-surface of each element's weight fraction (marching cubes).

    ``levels`` (one per element, weight fractions) default to the 90th percentile
    of the element's fraction inside the particle; ``step`` coarsens the surface.
    Axes are in nm; the legend gives each surface's level.
    """
    from skimage.measure import marching_cubes

    plt = _pyplot()
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    fig = plt.figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(projection="3d")
    mask = maps.particle_mask
    pixel = float(maps.pixel_size.m_as("nm"))
    for index, element in enumerate(elements):
        values = maps.fraction(element)
        inside = values[mask]
        level = levels[index] if levels is not None else (np.quantile(inside, 0.9) if inside.size else 0.5)
        if not (values.min() < level < values.max()):
            continue
        verts, faces, _, _ = marching_cubes(values, level=level, step_size=step)
        xyz = verts[:, [1, 2, 0]] * pixel  # x, y (slices), z
        ax.add_collection3d(Poly3DCollection(xyz[faces], facecolor=COLOURS[index], alpha=0.45, linewidth=0))
        ax.plot([], [], color=COLOURS[index], lw=6, label=f"{element} weight fraction ≥ {level:.2f}")
    nz, nx, ny = maps.shape
    ax.set_xlim(0, nx * pixel)
    ax.set_ylim(0, ny * pixel)
    ax.set_zlim(0, nz * pixel)
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y, tilt axis (nm)")
    ax.set_zlabel("z, beam (nm)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text2D(0.02, 0.95, "no iso-surface inside the value range", transform=ax.transAxes, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _finish(fig, path, formats, dpi)


def view3d(maps: CompositionMaps, elements: Sequence[str] | None = None, backend: str = "matplotlib") -> Any:
    """Show the weight fractions in 3D: ``"matplotlib"`` (a figure) or ``"pyvista"`` (a viewer).

    pyvista is optional (extra ``viewers``); a missing one raises ImportError
    naming the package. For napari use :func:`edstomo_microscope.viewer.open_napari`
    (behind ``edstomo view``).
    """
    elements = list(elements) if elements is not None else maps.elements[:3]
    if backend == "matplotlib":
        return volume_figure(maps, elements)
    spacing = float(maps.pixel_size.m_as("nm"))
    if backend == "pyvista":
        try:
            import pyvista
        except ImportError:
            raise ImportError("backend 'pyvista' needs the pyvista package: pip install pyvista") from None
        plotter = pyvista.Plotter()
        for index, element in enumerate(elements):
            grid = pyvista.ImageData(dimensions=maps.shape, spacing=(spacing,) * 3)
            grid.point_data[element] = maps.fraction(element).ravel(order="F")
            plotter.add_volume(grid, scalars=element, cmap=_COLOUR_MAPS[index % 6], opacity="linear")
        plotter.show()
        return plotter
    raise ValueError(f"backend: {backend!r} must be 'matplotlib' or 'pyvista' (napari: edstomo_microscope.viewer)")


#: matplotlib colour maps in the order of :data:`COLOURS` (for pyvista volumes).
_COLOUR_MAPS = ("Reds", "Greens", "Blues", "YlOrBr", "RdPu", "GnBu")


def composite_elements(elements: Sequence[str]) -> list[str]:
    """The elements of a composite: the first three of :data:`COMPOSITE_PREFERENCE` present, else the first three."""
    preferred = [e for e in COMPOSITE_PREFERENCE if e in elements]
    return preferred[:3] if len(preferred) >= 3 else list(elements)[:3]


def pipeline_figures(
    folder: str | Path,
    *,
    series: TiltSeries | None = None,
    maps: Mapping[str, CompositionMaps] | None = None,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> list[Path]:
    """The standard figures of a reconstruction, written into ``folder``.

    ``tilts.png`` (the channels of ``series`` at three tilts) when a series is
    given; with weight fractions (``{method: maps}``, methods named after their
    solvers) also ``orthoslices_<method>.png`` (every element),
    ``composite_<method>.png`` (:func:`composite_elements`) and
    ``volume_<method>.png`` of the last method (the bimodal one when the
    pipeline ran one). Every method is cut at the same planes (those of the last
    method) and drawn with the same colour limits per element. When the line
    intensities of ``series`` were fitted, also ``spectrum_fit.png``
    (:func:`spectrum_fit_figure`).
    """
    folder = Path(folder)
    written: list[Path] = []
    if series is not None:
        written.append(tilt_figure(series, folder / "tilts.png", formats=formats, dpi=dpi))
        fit = next((s["parameters"].get("line_fit") for s in series.provenance if s.get("action") == "load"), None)
        if fit is not None:
            written.append(spectrum_fit_figure(fit, path=folder / "spectrum_fit.png", formats=formats, dpi=dpi))
    maps = dict(maps or {})
    if not maps:
        return written
    best = list(maps)[-1]  # the last method: the bimodal one when there is one
    elements = maps[best].elements
    composite = composite_elements(elements)
    cut = plane_indices(maps[best])
    composite_cut = plane_indices(maps[best], composite[0])
    limits = colour_limits(list(maps.values()), elements)
    for method, result in maps.items():
        label = method
        written.append(
            orthoslice_figure(
                result,
                cut=cut,
                limits=limits,
                title=f"Weight fractions, {label}",
                path=folder / f"orthoslices_{method}.png",
                formats=formats,
                dpi=dpi,
            )
        )
        written.append(
            composite_figure(
                result,
                composite,
                cut=composite_cut,
                limits=limits,
                title=f"{' / '.join(composite)} composite, {label}",
                path=folder / f"composite_{method}.png",
                formats=formats,
                dpi=dpi,
            )
        )
    written.append(
        volume_figure(
            maps[best],
            composite,
            title=f"3D view ({best})",
            path=folder / f"volume_{best}.png",
            formats=formats,
            dpi=dpi,
        )
    )
    return written


def figures_from_folder(out: str | Path, *, formats: Sequence[str] = ("png",)) -> list[Path]:
    """:func:`pipeline_figures` of a result folder (``tilt_series_aligned.h5``, ``maps_<method>.h5``) into
    ``out/figures``; a folder of volumes only gets their orthoslices (``volume_<method>.png``)."""
    from edstomo.data import load

    out = Path(out)
    aligned = out / "tilt_series_aligned.h5"
    series = load(aligned) if aligned.is_file() else None
    maps = {p.stem.removeprefix("maps_"): load(p) for p in sorted(out.glob("maps_*.h5"))}
    written = pipeline_figures(out / "figures", series=series, maps=maps, formats=formats)  # type: ignore[arg-type]
    if not maps:
        for path in sorted(out.glob("volume_*.h5")):
            volume = load(path)
            method = path.stem.removeprefix("volume_")
            title = f"Reconstructed maps, {method}"
            target = out / "figures" / f"{path.stem}.png"
            written.append(volume_orthoslice_figure(volume, title=title, path=target, formats=formats))  # type: ignore[arg-type]
    return written


def tilt_figure(
    series: TiltSeries, path: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = figures.DPI
) -> Path:
    """The channels (HAADF and lines) at the lowest, middle and highest tilt, tilt axis vertical.

    One colour scale per channel (its full range over the three tilts), with a
    labelled colour bar; scale bar or nm axes on every panel.
    """
    from matplotlib.colors import Normalize

    plt = _pyplot()
    tilts = sorted({0, series.n_tilts // 2, series.n_tilts - 1})
    channels = series.channels
    fig, axes = plt.subplots(
        len(tilts),
        len(channels),
        figsize=(1.9 * len(channels) + 0.6, 2.0 * len(tilts) + 1.2),
        squeeze=False,
        layout="constrained",
    )
    pixel = float(series.pixel_size.m_as("nm"))
    angles = series.angles.m_as("deg")
    for col, channel in enumerate(channels):
        images = [series.channel(channel)[t].T for t in tilts]  # rows slices (tilt axis vertical), columns positions
        top = max(float(np.max(image)) for image in images)
        norm = Normalize(vmin=0.0, vmax=top if top > 0 else 1.0)
        shown = None
        for row, (t, image) in enumerate(zip(tilts, images)):
            shown = figures.image_panel(
                axes[row, col],
                image,
                pixel,
                norm=norm,
                cmap="gray" if channel == HAADF else "inferno",
                title=f"{channel}, {angles[t]:g}°",
                xlabel="across axis" if row == len(tilts) - 1 else "",
                ylabel="tilt axis" if col == 0 else "",
            )
        label = quantity_of(series, channel) + (" (arb. units)" if channel == HAADF else " per pixel")
        figures.colour_bar(fig, shown, axes[:, col].tolist(), label, location="bottom", shrink=0.9)
    fig.suptitle(
        f"Aligned tilt series (tilt axis vertical), pixel {pixel:.3g} nm; colour scales 0 to maximum", fontsize=9
    )
    return figures.save(fig, path, formats=formats, dpi=dpi)


def spectrum_fit_figure(
    record: Mapping[str, Any],
    *,
    path: str | Path | None = None,
    split_kev: float = 3.0,
    formats: Sequence[str] = ("png",),
    dpi: int = figures.DPI,
) -> Any:
    """The summed spectrum of a series, its fitted model, families and residual.

    Parameters
    ----------
    record : dict
        The ``line_fit`` record of the ``load`` provenance step
        (:meth:`edstomo_microscope.linefit.SeriesFit.record`).
    path : path, optional
        PNG to write; the figure is returned when None.
    split_kev : float
        The energy (keV) at which the spectrum is split into two panels (low energies on the left).
    formats, dpi
        See :func:`edstomo.figures.save`.

    Returns
    -------
    Path or matplotlib Figure
    """
    from .families import element_families
    from .spectrum_model import EnergyCalibration

    plt = _pyplot()
    spectrum = record["spectrum"]
    counts = np.asarray(spectrum["counts"], dtype=float)
    model = np.asarray(spectrum["model"], dtype=float)
    continuum = np.asarray(spectrum["continuum"], dtype=float)
    calibration = EnergyCalibration(**record["calibration"])
    first = int(spectrum["first_channel"])
    channels = first + counts.size
    energies = calibration.centres(channels)[first:]
    edges = calibration.edges(channels)
    contributions = {}
    for name, entry in record["families"].items():
        element, shell = name.split()
        family = next(
            f for f in element_families(element, record["beam_energy_kev"], yields=record["yields"]) if f.shell == shell
        )
        contributions[name] = entry["counts"] * family.spectrum(edges, calibration.fwhm_mn_ev)[first:]
    residual = (counts - model) / np.sqrt(np.maximum(model, 1.0))
    panels = [p for p in (energies < split_kev, energies >= split_kev) if p.any()]
    fig, axes = plt.subplots(
        2, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False, gridspec_kw={"height_ratios": [3, 1]}
    )
    for column, inside in enumerate(panels):
        top, bottom = axes[0, column], axes[1, column]
        e = energies[inside]
        top.plot(e, counts[inside], ".", color="0.2", ms=2, label="summed counts")
        top.plot(e, model[inside], "-", color="tab:red", lw=1.0, label="model")
        top.plot(e, continuum[inside], "--", color="tab:blue", lw=0.8, label="continuum")
        height = counts[inside].max(initial=1.0)
        for name, values in contributions.items():
            part = values[inside]
            if part.max(initial=0.0) < 0.01 * height:
                continue
            top.plot(e, continuum[inside] + part, "-", lw=0.6)
            peak = int(np.argmax(part))
            top.annotate(name, (e[peak], continuum[inside][peak] + part[peak]), fontsize=6, ha="center", va="bottom")
        for peak in record.get("unexplained_peaks", []):
            if e[0] <= peak["energy_kev"] <= e[-1]:
                top.axvline(peak["energy_kev"], color="tab:purple", lw=0.6, ls=":")
        top.set_yscale("log")
        top.set_ylim(max(0.5, 0.5 * model[inside].min()), 2.0 * height)
        top.set_xlabel("energy (keV)")
        top.set_ylabel("counts per channel")
        bottom.plot(e, residual[inside], "-", color="0.2", lw=0.6)
        bottom.axhline(0.0, color="tab:red", lw=0.6)
        bottom.set_xlabel("energy (keV)")
        bottom.set_ylabel("(data − model)/√model")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Summed spectrum and line-family fit (reduced χ² {record['chi2_reduced']:.2f}; "
        f"FWHM at Mn Kα {calibration.fwhm_mn_ev:.0f} eV; dotted: unexplained peaks)",
        fontsize=9,
    )
    fig.tight_layout()
    return _finish(fig, path, formats, dpi)
