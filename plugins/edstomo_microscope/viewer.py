"""``edstomo view``: look at reconstructed volumes in napari, or as figures where no viewer can open.

:func:`find_results` collects the volumes of a result (a folder written by
``edstomo reconstruct``/``quantify``, or one ``.h5`` file): weight-fraction
maps (``maps_<method>.h5``) when present, else the reconstructed volumes
(``volume_<method>.h5``). :func:`open_napari` shows them in napari (optional
extra ``viewers``), one image layer per element or line named
``"<element> (<method>)"``, with its own colour map, additive blending, the
voxel size as the layer scale (nm) and axes labelled ``z``, ``x``, ``y``.
:func:`view` decides: napari when it is installed and a display is available,
otherwise the orthoslice figures (:mod:`.pictures`) written to a folder, and
says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edstomo.data import CompositionMaps, Volume, load

__all__ = ["NAPARI_COLOURMAPS", "ViewOutcome", "display_available", "find_results", "layers", "open_napari", "view"]

#: napari colour maps given to the layers, in order.
NAPARI_COLOURMAPS = ("red", "green", "blue", "yellow", "magenta", "cyan", "bop orange", "bop purple")

Shown = CompositionMaps | Volume


def display_available() -> bool:
    """Whether a graphical display is reachable (``DISPLAY`` or ``WAYLAND_DISPLAY`` set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def find_results(result: str | Path) -> dict[str, Shown]:
    """The volumes to show from a result folder or file, keyed by method (``"eds"``, ``"hebt"``, or the file stem).

    A folder gives its ``maps_<method>.h5`` files, or without any its
    ``volume_<method>.h5`` files; a file gives its own content.

    Raises
    ------
    FileNotFoundError
        When ``result`` does not exist or the folder holds neither.
    ValueError
        When a file holds a tilt series, not a volume.
    """
    path = Path(result)
    if path.is_dir():
        files = sorted(path.glob("maps_*.h5")) or sorted(path.glob("volume_*.h5"))
        if not files:
            raise FileNotFoundError(f"result: folder {str(path)!r} holds no maps_*.h5 or volume_*.h5 file")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"result: {str(path)!r} does not exist")
    found: dict[str, Shown] = {}
    for file in files:
        content = load(file)
        if not isinstance(content, (CompositionMaps, Volume)):
            raise ValueError(f"result: {str(file)!r} holds a {type(content).__name__}; view shows volumes and maps")
        key = file.stem.split("_", 1)[1] if "_" in file.stem else file.stem
        found[key] = content
    return found


def layers(results: Mapping[str, Shown], elements: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """napari image layers (data and keywords of ``Viewer.add_image``) for the results.

    Each element (maps) or channel (volumes) becomes one layer with its own
    colour map; weight fractions have contrast limits 0–1, volumes their range.
    """
    out = []
    for method, shown in results.items():
        names = shown.elements if isinstance(shown, CompositionMaps) else shown.channels
        chosen = [n for n in names if elements is None or n in elements]
        if elements is not None and not chosen:
            raise ValueError(f"elements: none of {list(elements)} is in the {method} result ({names})")
        spacing = float(shown.pixel_size.m_as("nm"))
        for name in chosen:
            if isinstance(shown, CompositionMaps):
                data, limits, unit = shown.fraction(name), (0.0, 1.0), "weight fraction"
            else:
                data = shown.channel(name)
                low, high = float(np.min(data)), float(np.max(data))
                limits, unit = (low, high if high > low else low + 1.0), f"{shown.quantity} ({shown.unit})"
            out.append(
                {
                    "data": np.asarray(data, dtype=np.float32),
                    "name": f"{name} ({method})",
                    "scale": (spacing, spacing, spacing),
                    "units": ("nm", "nm", "nm"),
                    "colormap": NAPARI_COLOURMAPS[len(out) % len(NAPARI_COLOURMAPS)],
                    "blending": "additive",
                    "contrast_limits": limits,
                    "metadata": {"quantity": unit, "voxel_nm": spacing},
                }
            )
    return out


def open_napari(results: Mapping[str, Shown], *, elements: Sequence[str] | None = None, run: bool = False) -> Any:
    """Open a napari viewer (3D) with one layer per element or channel; ``run=True`` blocks until it is closed."""
    try:
        import napari
    except ImportError:
        raise ImportError('viewing in napari needs the napari package: pip install "edstomo[viewers]"') from None
    viewer = napari.Viewer(ndisplay=3, title="edstomo")
    for layer in layers(results, elements):
        data = layer.pop("data")
        units = layer.pop("units")
        viewer.add_image(data, **layer)
        viewer.scale_bar.unit = units[0]
    viewer.dims.axis_labels = ("z", "x", "y")
    viewer.scale_bar.visible = True
    if run:
        napari.run()
    return viewer


@dataclass
class ViewOutcome:
    """What :func:`view` did: ``"napari"`` or ``"figures"``, why, and the figures written."""

    mode: str
    reason: str
    files: list[Path]


def view(
    result: str | Path,
    *,
    out: str | Path | None = None,
    elements: Sequence[str] | None = None,
    figures_only: bool = False,
    formats: Sequence[str] = ("png",),
) -> ViewOutcome:
    """Show a result in napari, or write its figures when napari or a display is missing.

    Parameters
    ----------
    result : folder or file
        See :func:`find_results`.
    out : folder, optional
        Where figures go (default: ``view`` beside or inside the result).
    elements : list of str, optional
        Only these elements (maps) or channels (volumes).
    figures_only : bool
        Write the figures even when napari could open.
    formats : list of str
        Figure formats besides PNG.
    """
    results = find_results(result)
    import importlib.util

    if figures_only:
        reason = "figures asked for"
    elif importlib.util.find_spec("napari") is None:
        reason = 'napari is not installed (pip install "edstomo[viewers]")'
    elif not display_available():
        reason = "no display (DISPLAY/WAYLAND_DISPLAY unset)"
    else:
        open_napari(results, elements=elements, run=True)
        return ViewOutcome("napari", "napari and a display are available", [])
    folder = Path(out) if out is not None else (Path(result) if Path(result).is_dir() else Path(result).parent) / "view"
    return ViewOutcome("figures", reason, _figures(results, folder, elements, formats))


def _figures(
    results: Mapping[str, Shown], folder: Path, elements: Sequence[str] | None, formats: Sequence[str]
) -> list[Path]:
    from .pictures import pipeline_figures, volume_orthoslice_figure

    maps = {k: v for k, v in results.items() if isinstance(v, CompositionMaps)}
    if elements is not None:
        maps = {k: _only(v, elements) for k, v in maps.items()}
    volumes = {k: v for k, v in results.items() if isinstance(v, Volume)}
    written = pipeline_figures(folder, maps=maps, formats=formats) if maps else []
    for method, volume in volumes.items():
        channels = [c for c in volume.channels if elements is None or c in elements]
        path = folder / f"volume_{method}.png"
        title = f"Reconstructed maps, {method}"
        written.append(volume_orthoslice_figure(volume, channels, title=title, path=path, formats=formats))
    return written


def _only(maps: CompositionMaps, elements: Sequence[str]) -> CompositionMaps:
    """The maps of some elements only (the particle mask kept)."""
    kept = [e for e in maps.elements if e in elements]
    if not kept:
        raise ValueError(f"elements: none of {list(elements)} is in the maps ({maps.elements})")
    fractions = np.stack([maps.fraction(e) for e in kept])
    return maps.replace(weight_fractions=fractions, elements=kept, mask=maps.particle_mask)
