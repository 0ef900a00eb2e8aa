"""Pictures of weight-fraction volumes: orthoslices, colour composites and a 3D view.

matplotlib draws everything by default (imported when a picture is made).
:func:`view3d` can also hand the maps to pyvista or napari when they are
installed (optional; interactive viewers, not needed for files).

Orientation of a volume ``(nz, nx, slices)``: ``z`` runs along the beam at 0°,
``x`` across the tilt axis, ``y`` (the slices) along it. The three orthoslices
are the ``x–y`` plane at one depth (the view of the 0° projection), the
``x–z`` plane of one slice (a tomographic slice) and the ``y–z`` plane at one
``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edstomo.data import CompositionMaps
from edstomo.io import atomic_save_figure

from .alignment import centre_of_mass

if TYPE_CHECKING:
    from .pipeline import PipelineResult

__all__ = [
    "COLOURS",
    "COMPOSITE_PREFERENCE",
    "colour_composite",
    "composite_figure",
    "orthoslice_figure",
    "pipeline_figures",
    "plane_indices",
    "view3d",
    "volume_figure",
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


def _planes(volume: np.ndarray, cut: tuple[int, int, int]) -> dict[str, np.ndarray]:
    z, x, y = cut
    return {
        f"x–y plane (z = {z})": volume[z].T,  # rows y (along the tilt axis), columns x
        f"x–z plane (slice {y})": volume[:, :, y],  # rows z, columns x
        f"y–z plane (x = {x})": volume[:, x, :],  # rows z, columns y
    }


def orthoslice_figure(
    maps: CompositionMaps,
    elements: Sequence[str] | None = None,
    *,
    cut: tuple[int, int, int] | None = None,
    title: str = "",
    path: str | Path | None = None,
    dpi: int = 80,
) -> Any:
    """Orthoslices of each element's weight fraction (one row per element, three planes).

    Each element has its own colour scale, from 0 to the 99.5th percentile of
    its fractions inside the particle, so that minor elements stay visible.

    Parameters
    ----------
    maps : CompositionMaps
        The weight fractions.
    elements : list of str, optional
        Elements shown (default all).
    cut : (z, x, slice), optional
        Where the planes cut the volume (default :func:`plane_indices`).
    title : str
        Figure title.
    path : str or Path, optional
        Save the figure there (PNG) and close it.
    dpi : int
        Resolution of the saved figure.

    Returns
    -------
    matplotlib Figure (or the path when saved)
    """
    plt = _pyplot()
    elements = list(elements) if elements is not None else maps.elements
    cut = cut or plane_indices(maps)
    fig, axes = plt.subplots(
        len(elements), 3, figsize=(9.0, 2.3 * len(elements) + 0.5), squeeze=False, layout="constrained"
    )
    pixel = float(maps.pixel_size.m_as("nm"))
    mask = maps.particle_mask
    for row, element in enumerate(elements):
        values = maps.fraction(element)
        top = _display_max(values[mask])
        for col, (label, image) in enumerate(_planes(values, cut).items()):
            ax = axes[row, col]
            shown = ax.imshow(image, cmap="viridis", vmin=0.0, vmax=top, interpolation="nearest", aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label, fontsize=9)
            if col == 0:
                ax.set_ylabel(element, fontsize=11)
        fig.colorbar(shown, ax=axes[row, 2], fraction=0.05, pad=0.02, label="wt fraction")
    fig.suptitle(f"{title} (pixel {pixel:.3g} nm)".strip(), fontsize=10)
    return _finish(fig, path, dpi)


def _display_max(values: np.ndarray) -> float:
    """Upper end of a colour scale: the 99.5th percentile (at least 0.05, at most 1)."""
    if values.size == 0:
        return 1.0
    return float(np.clip(np.percentile(values, 99.5), 0.05, 1.0))


def _finish(fig: Any, path: str | Path | None, dpi: int) -> Any:
    if path is None:
        return fig
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return atomic_save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


def colour_composite(
    images: Sequence[np.ndarray],
    colours: Sequence[tuple[float, float, float]] | None = None,
    *,
    percentile: float = 99.5,
) -> np.ndarray:
    """Additive colour composite of 2-D images, each scaled to its ``percentile`` (RGB, values in [0, 1])."""
    colours = list(colours or COLOURS)
    if len(images) > len(colours):
        raise ValueError(f"images: {len(images)} images but only {len(colours)} colours")
    rgb = np.zeros((*np.shape(images[0]), 3))
    for image, colour in zip(images, colours):
        image = np.nan_to_num(np.asarray(image, dtype=np.float64))
        top = np.percentile(image, percentile) if image.size else 0.0
        scaled = np.clip(image / top, 0.0, 1.0) if top > 0 else np.zeros_like(image)
        rgb += scaled[..., None] * np.asarray(colour)[None, None, :]
    return np.clip(rgb, 0.0, 1.0)


def composite_figure(
    maps: CompositionMaps,
    elements: Sequence[str],
    *,
    cut: tuple[int, int, int] | None = None,
    title: str = "",
    path: str | Path | None = None,
    dpi: int = 80,
) -> Any:
    """Colour composite of a few elements' weight fractions on the three orthoslice planes.

    The planes cut through the first element's rich region unless ``cut`` is given.
    """
    plt = _pyplot()
    cut = cut or plane_indices(maps, elements[0])
    planes = [_planes(maps.fraction(e), cut) for e in elements]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    for ax, label in zip(axes, planes[0]):
        ax.imshow(colour_composite([p[label] for p in planes]), interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], color=c, lw=6) for c in COLOURS[: len(elements)]]
    fig.legend(handles, list(elements), loc="lower center", ncol=len(elements), frameon=False)
    fig.suptitle(title, fontsize=10)
    return _finish(fig, path, dpi)


def volume_figure(
    maps: CompositionMaps,
    elements: Sequence[str],
    *,
    levels: Sequence[float] | None = None,
    step: int = 2,
    title: str = "",
    path: str | Path | None = None,
    dpi: int = 80,
) -> Any:
    """3D view with matplotlib: an iso-surface of each element's weight fraction (marching cubes).

    ``levels`` (one per element, weight fractions) default to the 90th percentile
    of the element's fraction inside the particle; ``step`` coarsens the surface.
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
        ax.plot([], [], color=COLOURS[index], lw=6, label=f"{element} ≥ {level:.2f}")
    nz, nx, ny = values.shape
    ax.set_xlim(0, nx * pixel)
    ax.set_ylim(0, ny * pixel)
    ax.set_zlim(0, nz * pixel)
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y, tilt axis (nm)")
    ax.set_zlabel("z, beam (nm)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    return _finish(fig, path, dpi)


def view3d(maps: CompositionMaps, elements: Sequence[str] | None = None, backend: str = "matplotlib") -> Any:
    """Show the weight fractions in 3D: ``"matplotlib"`` (a figure), ``"pyvista"`` or ``"napari"`` (viewers).

    pyvista and napari are optional; a missing one raises ImportError naming the package.
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
    if backend == "napari":
        try:
            import napari
        except ImportError:
            raise ImportError("backend 'napari' needs the napari package: pip install napari") from None
        viewer = napari.Viewer(ndisplay=3)
        for index, element in enumerate(elements):
            viewer.add_image(
                maps.fraction(element),
                name=element,
                scale=(spacing,) * 3,
                colormap=_napari_colour(index),
                blending="additive",
                contrast_limits=(0.0, 1.0),
            )
        return viewer
    raise ValueError(f"backend: {backend!r} must be 'matplotlib', 'pyvista' or 'napari'")


def _napari_colour(index: int) -> str:
    return ("red", "green", "blue", "yellow", "magenta", "cyan")[index % 6]


#: matplotlib colour maps in the order of :data:`COLOURS` (for pyvista volumes).
_COLOUR_MAPS = ("Reds", "Greens", "Blues", "YlOrBr", "RdPu", "GnBu")


def pipeline_figures(result: PipelineResult, folder: str | Path, *, dpi: int = 80) -> list[Path]:
    """The standard figures of a pipeline run, written as PNG into ``folder``.

    ``tilts.png`` (the aligned HAADF and line maps at three tilts) always; with
    weight fractions also ``orthoslices_<method>.png`` (every element),
    ``composite_<method>.png`` (the first three of :data:`COMPOSITE_PREFERENCE`
    present, else the first three elements) and ``volume_hebt.png`` (or
    ``volume_eds.png`` without HEBT).
    """
    folder = Path(folder)
    written: list[Path] = [tilt_figure(result, folder / "tilts.png", dpi=dpi)]
    if not result.maps:
        return written
    elements = next(iter(result.maps.values())).elements
    preferred = [e for e in COMPOSITE_PREFERENCE if e in elements]
    composite = preferred[:3] if len(preferred) >= 3 else elements[:3]
    for method, maps in result.maps.items():
        label = "EDS-only SIRT" if method == "eds" else "HEBT"
        written.append(
            orthoslice_figure(
                maps, title=f"Weight fractions, {label}", path=folder / f"orthoslices_{method}.png", dpi=dpi
            )
        )
        written.append(
            composite_figure(
                maps,
                composite,
                title=f"{' / '.join(composite)} composite, {label}",
                path=folder / f"composite_{method}.png",
                dpi=dpi,
            )
        )
    best = "hebt" if "hebt" in result.maps else "eds"
    written.append(
        volume_figure(
            result.maps[best], composite, title=f"3D view ({best.upper()})", path=folder / f"volume_{best}.png", dpi=dpi
        )
    )
    return written


def tilt_figure(result: PipelineResult, path: str | Path, *, dpi: int = 80) -> Path:
    """The aligned channels (HAADF and lines) at the lowest, middle and highest tilt."""
    plt = _pyplot()
    series = result.series
    tilts = sorted({0, series.n_tilts // 2, series.n_tilts - 1})
    fig, axes = plt.subplots(
        len(tilts), len(series.channels), figsize=(1.6 * len(series.channels), 1.8 * len(tilts)), squeeze=False
    )
    for row, t in enumerate(tilts):
        for col, channel in enumerate(series.channels):
            ax = axes[row, col]
            ax.imshow(
                series.channel(channel)[t].T, cmap="gray" if channel == "HAADF" else "inferno", interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(channel, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{series.angles.m_as('deg')[t]:g}°", fontsize=8)
    fig.suptitle("Aligned tilt series (tilt axis vertical)", fontsize=9)
    return _finish(fig, path, dpi)
