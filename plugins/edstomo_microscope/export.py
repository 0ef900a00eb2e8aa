"""Write tilt series, volumes and weight-fraction maps as HDF5, HyperSpy ``.hspy`` and TIFF stacks.

* HDF5 (:func:`save_hdf5`): edstomo's own layout (:mod:`edstomo.io`), with the
  experiment and the full provenance inside; compressed.
* HyperSpy (:func:`to_hyperspy`, :func:`save_hspy`): one ``Signal2D`` stack
  per channel or element. A tilt series is stored as etspy stores one: the
  navigation axis ``Tilt`` (degrees), image rows along the tilt axis (slices)
  and columns across it (positions), and ``metadata.Tomography`` with
  ``tilts`` (deg), ``shifts`` (tilts × 2, rows then columns, pixels),
  ``tiltaxis`` (deg), ``xshift``, ``yshift`` and ``cropped``. Volumes and
  maps are stacks of tomographic slices: navigation over the slices (``y``,
  along the tilt axis), each image ``z`` (rows, along the beam at 0°) by ``x``
  (columns). The edstomo experiment and provenance are kept in
  ``metadata.edstomo`` as JSON text.
* TIFF (:func:`save_tiff`): one float32 stack per channel or element, in the
  same orientation as the ``.hspy`` files, with ImageJ spacing in nm.

HyperSpy and tifffile are imported only when these formats are written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edstomo.data import CompositionMaps, TiltSeries, Volume, save
from edstomo.io import atomic_path

if TYPE_CHECKING:
    from .pipeline import PipelineResult

__all__ = ["export_all", "save_hdf5", "save_hspy", "save_tiff", "stacks", "to_hyperspy"]

Saved = TiltSeries | Volume | CompositionMaps


def save_hdf5(obj: Saved, path: str | Path) -> Path:
    """Save to edstomo's HDF5 layout, gzip-compressed, atomically (experiment and provenance inside)."""
    return save(obj, path, compression="gzip")


def stacks(obj: Saved) -> dict[str, np.ndarray]:
    """One image stack per channel or element, in the orientation of the exported files.

    Tilt series: (tilts, slices, positions) — each image as the microscope showed
    it when the tilt axis is vertical. Volumes and maps: (slices, nz, nx).
    """
    if isinstance(obj, TiltSeries):
        return {name: np.transpose(obj.data[i], (0, 2, 1)) for i, name in enumerate(obj.channels)}
    if isinstance(obj, Volume):
        return {name: np.transpose(obj.data[i], (2, 0, 1)) for i, name in enumerate(obj.channels)}
    if isinstance(obj, CompositionMaps):
        return {name: np.transpose(obj.weight_fractions[i], (2, 0, 1)) for i, name in enumerate(obj.elements)}
    raise TypeError(f"obj: expected a TiltSeries, Volume or CompositionMaps, got {type(obj).__name__}")


def _alignment_of(series: TiltSeries) -> dict[str, Any] | None:
    for step in reversed(series.provenance):
        if step.get("action") == "align":
            return step.get("parameters", {})
    return None


def _tomography(series: TiltSeries) -> dict[str, Any]:
    """etspy's ``metadata.Tomography`` node for a tilt series."""
    aligned = _alignment_of(series)
    shifts = np.zeros((series.n_tilts, 2))
    tiltaxis = xshift = 0.0
    cropped = False
    if aligned is not None:
        record = aligned["alignment"]
        scale = float(aligned.get("applied_scale", 1.0))
        shifts = np.asarray(record["shifts"], dtype=float)[:, ::-1] * scale  # (rows = slices, columns = positions)
        tiltaxis = float(record["axis_rotation_deg"])
        xshift = -float(record["axis_shift"]) * scale
        cropped = bool(aligned.get("crop", False))
    return {
        "tilts": series.angles.m_as("deg"),
        "shifts": shifts,
        "tiltaxis": tiltaxis,
        "xshift": xshift,
        "yshift": 0.0,
        "cropped": cropped,
    }


def _json(obj: Saved) -> dict[str, str]:
    from edstomo import provenance

    return {
        "experiment": obj.experiment.to_json() if obj.experiment is not None else "",
        "provenance": json.dumps(provenance.jsonable(obj.provenance)),
    }


def _import_hyperspy() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import hyperspy.api as hs
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(f'writing .hspy files needs HyperSpy ({error}); pip install "edstomo[microscope]"') from None
    return hs


def to_hyperspy(obj: Saved) -> dict[str, Any]:
    """HyperSpy ``Signal2D`` stacks, one per channel (or element), with calibrated axes and metadata."""
    hs = _import_hyperspy()
    pixel = float(obj.pixel_size.m_as("nm"))
    signals = {}
    for name, stack in stacks(obj).items():
        if isinstance(obj, TiltSeries):
            angles = obj.angles.m_as("deg")
            steps = np.diff(angles)
            if angles.size > 1 and np.allclose(steps, steps[0]):
                tilt_axis = {"name": "Tilt", "units": "degrees", "scale": float(steps[0]), "offset": float(angles[0])}
            elif angles.size > 1:
                tilt_axis = {"name": "Tilt", "units": "degrees", "axis": angles}
            else:
                tilt_axis = {"name": "Tilt", "units": "degrees", "scale": 1.0, "offset": float(angles[0])}
            axes = [
                {**tilt_axis, "size": stack.shape[0], "navigate": True},
                {"name": "y", "units": "nm", "scale": pixel, "offset": 0.0, "size": stack.shape[1]},
                {"name": "x", "units": "nm", "scale": pixel, "offset": 0.0, "size": stack.shape[2]},
            ]
            quantity = "Counts" if name != "HAADF" else "HAADF signal"
        else:
            axes = [
                {"name": "y", "units": "nm", "scale": pixel, "offset": 0.0, "size": stack.shape[0], "navigate": True},
                {"name": "z", "units": "nm", "scale": pixel, "offset": 0.0, "size": stack.shape[1]},
                {"name": "x", "units": "nm", "scale": pixel, "offset": 0.0, "size": stack.shape[2]},
            ]
            quantity = "Weight fraction" if isinstance(obj, CompositionMaps) else f"{obj.quantity} ({obj.unit})"
        signal = hs.signals.Signal2D(np.ascontiguousarray(stack, dtype=np.float32), axes=axes)
        signal.metadata.General.title = name
        signal.metadata.set_item("Signal.quantity", quantity)
        if isinstance(obj, TiltSeries):
            signal.metadata.add_dictionary({"Tomography": _tomography(obj)})
        signal.metadata.add_dictionary({"edstomo": {"object": type(obj).__name__, "name": name, **_json(obj)}})
        signals[name] = signal
    return signals


def save_hspy(obj: Saved, folder: str | Path, prefix: str) -> list[Path]:
    """Write ``{prefix}_{name}.hspy`` per channel or element into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, signal in to_hyperspy(obj).items():
        path = folder / f"{prefix}_{name}.hspy"
        with atomic_path(path) as temporary:
            signal.save(temporary, overwrite=True, file_format="HSPY")
        written.append(path)
    return written


def save_tiff(obj: Saved, folder: str | Path, prefix: str) -> list[Path]:
    """Write ``{prefix}_{name}.tif`` per channel or element (float32, ImageJ spacing in nm)."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixel = float(obj.pixel_size.m_as("nm"))
    written = []
    for name, stack in stacks(obj).items():
        path = folder / f"{prefix}_{name}.tif"
        with atomic_path(path) as temporary:
            tifffile.imwrite(
                temporary,
                np.ascontiguousarray(stack, dtype=np.float32),
                imagej=True,
                resolution=(1.0 / pixel, 1.0 / pixel),
                metadata={"axes": "ZYX", "unit": "nm", "spacing": pixel},
            )
        written.append(path)
    return written


def export_all(result: PipelineResult, out: str | Path) -> list[str]:
    """Write every result of a pipeline run into ``out``; returns the paths written.

    ``tilt_series_raw.h5``, ``tilt_series_aligned.h5``, ``volume_<method>.h5``,
    ``maps_<method>.h5`` (method ``eds`` or ``hebt``); ``hspy/tilts_<channel>.hspy``
    (etspy-compatible) and ``hspy/maps_<method>_<element>.hspy``;
    ``tiff/maps_<method>_<element>.tif`` and ``tiff/volume_<method>_<line>.tif``.
    """
    out = Path(out)
    written = [
        save_hdf5(result.raw, out / "tilt_series_raw.h5"),
        save_hdf5(result.series, out / "tilt_series_aligned.h5"),
    ]
    written += save_hspy(result.series, out / "hspy", "tilts")
    for method, volume in result.volumes.items():
        written.append(save_hdf5(volume, out / f"volume_{method}.h5"))
        written += save_tiff(volume, out / "tiff", f"volume_{method}")
    for method, maps in result.maps.items():
        written.append(save_hdf5(maps, out / f"maps_{method}.h5"))
        written += save_hspy(maps, out / "hspy", f"maps_{method}")
        written += save_tiff(maps, out / "tiff", f"maps_{method}")
    return [str(p) for p in written]
