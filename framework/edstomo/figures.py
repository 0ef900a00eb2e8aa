"""Publication-quality figure helpers shared by the microscope pictures and the study figures.

* :func:`image_panel` — an image with a scale bar (``matplotlib-scalebar``,
  when installed) or, without it, axes calibrated in nm; the colour limits
  given, never guessed;
* :func:`colour_bar` — a colour bar with its label and unit, marked with an
  arrow when the scale is clipped;
* :func:`save` — PNG at :data:`DPI` (≥ 150) and optionally SVG/PDF; the PNG
  carries a description of what was drawn (:func:`describe`) as a text chunk
  (key :data:`METADATA_KEY`) so that tests and users can check every panel:
  its scale (scale bar or calibrated axes), its colour bar label, its colour
  limits;
* :func:`read_description` and :func:`problems` read that record back and
  list what a figure lacks.

matplotlib is imported only when a figure is drawn (extra ``plots``);
``matplotlib-scalebar`` is optional.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_save_figure

__all__ = [
    "DPI",
    "FORMATS",
    "METADATA_KEY",
    "caption",
    "colour_bar",
    "describe",
    "has_scalebar_package",
    "image_panel",
    "problems",
    "read_description",
    "save",
    "state_limits",
]

#: Resolution of saved PNG figures (dots per inch).
DPI = 150
#: Formats :func:`save` writes besides PNG when asked.
FORMATS = ("png", "svg", "pdf")
#: PNG text key holding the JSON description of a figure.
METADATA_KEY = "edstomo:figure"

_LENGTH_UNITS = ("(nm)", "(µm)", "(um)")
_ANGLE_UNITS = ("(deg)", "(°)", "(degrees)")


def has_scalebar_package() -> bool:
    """Whether ``matplotlib-scalebar`` is installed (scale bars; otherwise calibrated axes)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib_scalebar") is not None


def image_panel(
    ax: Any,
    image: np.ndarray,
    pixel_nm: float | tuple[float, float],
    *,
    limits: tuple[float, float] | None = None,
    norm: Any = None,
    cmap: str = "viridis",
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    scalebar: bool | None = None,
    aspect: str = "equal",
) -> Any:
    """Draw a 2-D image with a length scale.

    Parameters
    ----------
    ax : matplotlib Axes
        Where to draw.
    image : array (rows, columns), or (rows, columns, 3) RGB
        The image.
    pixel_nm : float or (row, column) floats
        Pixel size in nm (rows, columns).
    limits : (low, high), optional
        Colour limits of a scalar image (it needs these or ``norm``: figures state their limits).
    norm : matplotlib Normalize, optional
        A colour normalisation shared with other panels (one colour bar then serves them all).
    cmap : str
        Colour map of a scalar image.
    title : str
        Panel title.
    xlabel, ylabel : str
        What the columns and rows run along (e.g. ``"x"``); the unit is added.
    scalebar : bool, optional
        Draw a scale bar instead of calibrated axes; default: when
        ``matplotlib-scalebar`` is installed and the pixels are square.

    Returns
    -------
    matplotlib AxesImage
    """
    if np.ndim(pixel_nm) == 0:
        rows = columns = float(pixel_nm)  # type: ignore[arg-type]
    else:
        rows, columns = (float(v) for v in pixel_nm)  # type: ignore[union-attr]
    image = np.asarray(image)
    scalar = image.ndim == 2
    if scalar and limits is None and norm is None:
        raise ValueError("limits: a scalar image needs explicit colour limits (low, high) or a norm")
    if scalebar is None:
        scalebar = has_scalebar_package() and np.isclose(rows, columns)
    extent = (0.0, image.shape[1] * columns, image.shape[0] * rows, 0.0)
    options: dict[str, Any] = {"interpolation": "nearest", "extent": extent, "aspect": aspect}
    if scalar and norm is not None:
        options.update(cmap=cmap, norm=norm)
    elif scalar:
        options.update(cmap=cmap, vmin=limits[0], vmax=limits[1])  # type: ignore[index]
    shown = ax.imshow(image, **options)
    if title:
        ax.set_title(title, fontsize=9)
    if scalebar:
        from matplotlib_scalebar.scalebar import ScaleBar

        # the extent is in nm, so one data unit is one nm
        ax.add_artist(ScaleBar(1.0, units="nm", location="lower right", box_alpha=0.6, font_properties={"size": 7}))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    else:
        ax.set_xlabel(f"{xlabel} (nm)".strip(), fontsize=8)
        ax.set_ylabel(f"{ylabel} (nm)".strip(), fontsize=8)
        ax.tick_params(labelsize=7)
    return shown


def state_limits(values: np.ndarray, *, low: float = 0.0, percentile: float | None = None) -> tuple[float, float, str]:
    """Colour limits of ``values`` and the sentence that states them on a figure.

    Without ``percentile`` the scale runs from ``low`` to the maximum; with it,
    to that percentile, and the statement says so and gives the maximum.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    top = float(values.max()) if values.size else 1.0
    if percentile is None:
        high = top
        text = f"{low:.3g}–{high:.3g} (full range)"
    else:
        high = float(np.percentile(values, percentile)) if values.size else 1.0
        text = f"{low:.3g}–{high:.3g} ({percentile:g}th percentile; maximum {top:.3g})"
    if not high > low:
        high = low + 1.0 if high <= low else high
    return low, high, text


def caption(fig: Any, text: str, *, fontsize: float = 7) -> Any:
    """A caption under the figure (in its layout), wrapped to the figure's width: e.g. the colour limits."""
    import textwrap

    width = max(40, int(fig.get_figwidth() * 100 / fontsize * 1.3))
    return fig.supxlabel(textwrap.fill(text, width=width), fontsize=fontsize)


def colour_bar(fig: Any, shown: Any, ax: Any, label: str, *, clipped: bool = False, **options: Any) -> Any:
    """A colour bar labelled ``label`` (which should name the unit); an arrow marks a clipped scale."""
    if not label:
        raise ValueError("label: a colour bar needs a label with the quantity and its unit")
    bar = fig.colorbar(shown, ax=ax, extend="max" if clipped else "neither", **options)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def _is_colour_bar(ax: Any) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def _units(text: str) -> str | None:
    if any(unit in text for unit in _LENGTH_UNITS):
        return "length"
    if any(unit in text for unit in _ANGLE_UNITS):
        return "angle"
    return None


def describe(fig: Any) -> dict[str, Any]:
    """What a figure shows, panel by panel (computed from its artists).

    Each image panel records its title, whether its scale is a scale bar or
    calibrated axes (``"scale"``: ``"scale bar"``, ``"axes"`` or None), whether
    it is an RGB composite (then ``"legend"`` tells whether a legend names the
    colours), and for scalar images the colour limits and the label of the
    colour bar that shows their scale (a colour bar serves every image that
    shares its normalisation; None when there is none). Plot panels record
    their axis labels.
    """
    panels = []
    legend = bool(fig.legends)
    bars = [
        (ax._colorbar.mappable.norm, ax.get_ylabel() or ax.get_xlabel() or None)
        for ax in fig.axes
        if _is_colour_bar(ax)
    ]
    for ax in fig.axes:
        if _is_colour_bar(ax):
            continue
        # a twin axes (twinx) shares the x axis, and its label, with its sibling
        siblings = ax.get_shared_x_axes().get_siblings(ax)
        xlabel = ax.get_xlabel() or next((a.get_xlabel() for a in siblings if a.get_xlabel()), "")
        entry: dict[str, Any] = {"title": ax.get_title(), "xlabel": xlabel, "ylabel": ax.get_ylabel()}
        if getattr(ax, "name", "") == "3d":
            labels = [ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()]
            entry.update(kind="3d", scale="axes" if all(_units(t) for t in labels) else None)
            entry["legend"] = ax.get_legend() is not None
            panels.append(entry)
            continue
        images = ax.get_images()
        if not images:
            entry["kind"] = "plot"
            panels.append(entry)
            continue
        bar = any(type(artist).__name__ == "ScaleBar" for artist in ax.artists)
        axes = _units(ax.get_xlabel()) is not None and _units(ax.get_ylabel()) is not None
        entry["kind"] = "image"
        entry["scale"] = "scale bar" if bar else ("axes" if axes else None)
        entry["axis_units"] = [_units(ax.get_xlabel()), _units(ax.get_ylabel())]
        image = images[0]
        if np.ndim(image.get_array()) == 3:
            entry["rgb"] = True
            entry["legend"] = legend or ax.get_legend() is not None
        else:
            entry["rgb"] = False
            entry["limits"] = [float(v) for v in image.get_clim()]
            entry["colorbar"] = next((label for norm, label in bars if norm is image.norm), None)
        panels.append(entry)
    return {"panels": panels, "suptitle": fig._suptitle.get_text() if fig._suptitle is not None else ""}


def problems(description: dict[str, Any], *, dpi: float | None = None) -> list[str]:
    """What a figure described by :func:`describe` lacks for publication (empty when nothing)."""
    found = []
    if dpi is not None and dpi < DPI - 0.5:
        found.append(f"resolution {dpi:g} dpi < {DPI}")
    for index, panel in enumerate(description["panels"]):
        name = f"panel {index} ({panel.get('title') or 'untitled'})"
        kind = panel.get("kind")
        if kind == "plot":
            if not (panel["xlabel"] and panel["ylabel"]):
                found.append(f"{name}: unlabelled plot axes")
            continue
        if panel.get("scale") is None:
            found.append(f"{name}: neither a scale bar nor axes in nm or degrees")
        if kind == "image" and panel.get("rgb") and not panel.get("legend"):
            found.append(f"{name}: a colour composite without a legend")
        if kind == "image" and not panel.get("rgb") and not panel.get("colorbar"):
            found.append(f"{name}: no labelled colour bar")
    return found


def save(fig: Any, path: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = DPI) -> Path:
    """Save ``fig`` as PNG (with its description) and in the other ``formats``; close it; return the PNG path.

    ``path`` names the PNG (its suffix is replaced); other formats are written
    beside it with their own suffixes. The folder is created if needed.
    """
    import matplotlib.pyplot as plt

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats: {unknown} are not among {list(FORMATS)}")
    if dpi < DPI:
        raise ValueError(f"dpi: {dpi} is below {DPI}, too coarse for print")
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps(describe(fig))
    try:  # each file written atomically (edstomo.io.atomic_save_figure): never half a figure
        atomic_save_figure(fig, path, dpi=dpi, metadata={"Software": "edstomo", METADATA_KEY: record})
        for extension in formats:
            if extension != "png":
                atomic_save_figure(fig, path.with_suffix(f".{extension}"), dpi=dpi)
    finally:
        plt.close(fig)
    return path


def read_description(path: str | Path) -> tuple[dict[str, Any], float]:
    """The description :func:`save` stored in a PNG, and the PNG's resolution (dpi)."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.text.get(METADATA_KEY)  # type: ignore[attr-defined]
        dpi = float(image.info.get("dpi", (0.0, 0.0))[0])
    if text is None:
        raise ValueError(f"path: {str(path)!r} holds no edstomo figure description ({METADATA_KEY!r})")
    return json.loads(text), dpi
