"""Write tilt series, volumes and weight-fraction maps as HDF5, HyperSpy/etspy ``.hspy`` and (optionally) TIFF.

Everything here takes plain data — :class:`~edstomo.data.TiltSeries`,
:class:`~edstomo.data.Volume`, :class:`~edstomo.data.CompositionMaps` — and
knows nothing of the pipeline that made them.

Which file to open with what
----------------------------
* ``*.h5`` — edstomo's own HDF5 layout (:mod:`edstomo.io`, experiment and full
  provenance inside; ``edstomo.load(path)``). HyperSpy does not read them:
  several RosettaSciIO readers claim ``.h5``, so ``hs.load`` stops before
  reading and asks for a reader (none of them fits). Open the ``.hspy``
  files with HyperSpy and etspy instead.
* ``hspy/*.hspy`` — one HyperSpy signal per channel or element (float32),
  readable by ``hs.load`` and ``etspy.load``:

  - ``tilts_<channel>.hspy``: an etspy ``TomoStack`` (``signal_type``
    ``"TomoStack"``): navigation axis ``Projections`` (degrees), each image
    ``y`` (rows, across the tilt axis: edstomo's *positions*) by ``x``
    (columns, along the tilt axis: edstomo's *slices*). This is etspy's
    geometry: its reconstruction treats every column as one slice.
    ``metadata.Tomography`` holds ``tilts`` (deg), ``shifts`` (tilts × 2,
    pixels, ``[:, 0]`` across and ``[:, 1]`` along the tilt axis: the shifts
    that were applied), ``tiltaxis`` (deg), ``xshift``, ``yshift`` (pixels)
    and ``cropped``;
  - ``volume_<method>_<channel>.hspy`` and ``maps_<method>_<element>.hspy``
    (only when asked for, ``hspy=True``: they repeat the ``.h5`` files' values
    and writing them took most of the export's time): an
    etspy ``RecStack`` (``signal_type`` ``"RecStack"``), shaped and oriented as
    etspy's own reconstruction of ``tilts_*.hspy``: navigation ``x`` (the
    slices, along the tilt axis), each image ``z`` (rows, along the beam at
    0°, running opposite to edstomo's ``z``: etspy and ASTRA turn the sample
    the other way for a positive tilt) by ``y`` (columns, across the tilt
    axis). Maps carry ``Signal.quantity`` ``"Weight fraction"``; maps with an
    uncertainty also ``maps_<method>_<element>_sigma.hspy`` (quantity
    ``"Weight fraction uncertainty (1 sigma)"``), and likewise in TIFF.

  Every ``.hspy`` file carries ``Sample.elements``, ``Sample.xray_lines`` (line
  channels), ``Acquisition_instrument.TEM.beam_energy`` (keV),
  ``beam_current`` (nA) and ``Detector.EDS.live_time`` (s per pixel) where
  the experiment knows them, and the edstomo experiment and provenance as
  JSON text under ``metadata.edstomo``.
* ``tiff/*.tif`` — only when asked for (``tiff=True``): float32 ImageJ stacks
  in the orientation of the ``.hspy`` files, spacing in nm.

HyperSpy and tifffile are imported only when these formats are written.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edstomo import provenance
from edstomo.data import HAADF, CompositionMaps, TiltSeries, Volume, save
from edstomo.io import atomic_path
from edstomo.lines import element_of

__all__ = [
    "export_all",
    "export_maps",
    "format_size",
    "hyperspy_metadata",
    "output_size",
    "quantity_of",
    "save_hdf5",
    "save_hspy",
    "save_tiff",
    "stacks",
    "tiff_from_folder",
    "to_hyperspy",
    "tomography_metadata",
]

Saved = TiltSeries | Volume | CompositionMaps

#: Suffix of the stacks of a map's uncertainty (``maps_<method>_<element>_sigma``).
SIGMA = "_sigma"

#: Provenance actions after which tilt-series values are no longer raw counts.
_RESCALING_ACTIONS = ("normalise_tilts", "normalise_slab", "gaussian_filter", "pad_positions")


def _check(obj: Any) -> None:
    if not isinstance(obj, (TiltSeries, Volume, CompositionMaps)):
        raise TypeError(f"obj: expected a TiltSeries, Volume or CompositionMaps, got {type(obj).__name__}")


def save_hdf5(obj: Saved, path: str | Path, *, dtype: Any = np.float32) -> Path:
    """Save to edstomo's HDF5 layout, gzip-compressed, atomically (experiment and provenance inside).

    Parameters
    ----------
    obj : TiltSeries, Volume or CompositionMaps
        What to save.
    path : str or Path
        Destination ``.h5`` file (its folder must exist).
    dtype : numpy dtype
        Floating type of the stored arrays: float32 (default) halves the file
        against float64 at a relative rounding of 6e-8; ``np.float64`` keeps
        every bit. Masks stay boolean. (A CompositionMaps object is float64 in
        memory; it is loaded back as float64.)
    """
    _check(obj)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype: {dtype} is not a floating-point type (use float32 or float64)")
    if isinstance(obj, CompositionMaps):
        stored = obj.replace()
        # validated as float64 on construction; stored at the requested precision
        stored.weight_fractions = obj.weight_fractions.astype(dtype)
        if obj.density is not None:
            stored.density = obj.density.astype(dtype)
        if obj.uncertainty is not None:
            stored.uncertainty = obj.uncertainty.astype(dtype)
    else:
        stored = obj.replace(data=np.asarray(obj.data).astype(dtype, copy=False))
    return save(stored, path, compression="gzip")


def stacks(obj: Saved) -> dict[str, np.ndarray]:
    """One image stack per channel or element, in etspy's orientation (that of the exported files).

    Tilt series: ``(tilts, positions, slices)`` — rows across the tilt axis,
    columns along it (each column one slice, as etspy reconstructs). Volumes
    and maps: ``(slices, nz, nx)`` with the ``z`` rows in reverse order — one
    tomographic slice per navigation index, oriented as etspy's own
    reconstruction of the exported tilt series (etspy, like ASTRA, turns the
    sample the other way round for a positive tilt angle).
    """
    _check(obj)
    if isinstance(obj, TiltSeries):
        return {name: obj.data[i] for i, name in enumerate(obj.channels)}
    if isinstance(obj, Volume):
        return {name: _etspy_slices(obj.data[i]) for i, name in enumerate(obj.channels)}
    result = {name: _etspy_slices(obj.weight_fractions[i]) for i, name in enumerate(obj.elements)}
    if obj.uncertainty is not None:  # the error bars beside the maps: <element>_sigma
        result.update({f"{name}{SIGMA}": _etspy_slices(obj.uncertainty[i]) for i, name in enumerate(obj.elements)})
    return result


def _etspy_slices(volume: np.ndarray) -> np.ndarray:
    """(nz, nx, slices) → (slices, z, nx) with z reversed: etspy's (ASTRA's) sense of rotation is opposite to
    edstomo's, so its reconstruction of the same tilt series runs the other way along z."""
    return np.transpose(volume, (2, 0, 1))[:, ::-1, :]


def _alignment_of(series: TiltSeries) -> dict[str, Any] | None:
    for step in reversed(series.provenance):
        if step.get("action") == "align":
            return step.get("parameters", {})
    return None


def tomography_metadata(series: TiltSeries) -> dict[str, Any]:
    """etspy's ``metadata.Tomography`` node for a tilt series (what its alignment applied).

    ``shifts`` are the per-tilt shifts in pixels of ``series`` (``[:, 0]``
    across the tilt axis, ``[:, 1]`` along it; content moved towards higher
    indices, as ``scipy.ndimage.shift`` and etspy apply them), ``tiltaxis``
    the in-plane rotation (deg) and ``yshift`` the offset of the tilt axis
    across it (pixels; etspy's ``trans_stack(yshift=...)`` sense).
    """
    aligned = _alignment_of(series)
    shifts = np.zeros((series.n_tilts, 2))
    tiltaxis = yshift = 0.0
    cropped = False
    if aligned is not None:
        record = aligned["alignment"]
        scale = float(aligned.get("applied_scale", 1.0))
        shifts = np.asarray(record["shifts"], dtype=float) * scale  # (positions, slices) = (rows, columns)
        tiltaxis = float(record["axis_rotation_deg"])
        yshift = float(record["axis_shift"]) * scale
        cropped = bool(aligned.get("crop", False))
    return {
        "tilts": series.angles.m_as("deg"),
        "shifts": shifts,
        "tiltaxis": tiltaxis,
        "xshift": 0.0,
        "yshift": yshift,
        "cropped": cropped,
    }


def quantity_of(obj: Saved, name: str) -> str:
    """What the values of one exported stack are (HyperSpy's ``Signal.quantity``).

    ``"Counts"`` for EDS line maps as loaded (``"Normalised counts"`` after a
    per-tilt normalisation, filter or padding), ``"HAADF intensity"`` likewise,
    ``"Weight fraction"`` for maps, and the volume's own quantity and unit.
    """
    if isinstance(obj, CompositionMaps):
        return "Weight fraction uncertainty (1 sigma)" if name.endswith(SIGMA) else "Weight fraction"
    if isinstance(obj, Volume):
        return f"{obj.quantity} ({obj.unit})"
    rescaled = any(step.get("action") in _RESCALING_ACTIONS for step in obj.provenance)
    if name == HAADF:
        return "Normalised HAADF intensity" if rescaled else "HAADF intensity"
    return "Normalised counts" if rescaled else "Counts"


def hyperspy_metadata(obj: Saved, name: str) -> dict[str, Any]:
    """The HyperSpy metadata of one exported stack (without axes and Tomography node)."""
    experiment = obj.experiment
    if isinstance(obj, CompositionMaps):
        elements = list(obj.elements)
    elif experiment is not None:
        elements = sorted({element_of(line) for line in experiment.lines})
    else:
        channels = obj.channels
        elements = sorted({element_of(c) for c in channels if c != HAADF})
    sample: dict[str, Any] = {"elements": elements}
    if not isinstance(obj, CompositionMaps) and name != HAADF:
        sample["xray_lines"] = [name]
    metadata: dict[str, Any] = {
        "General": {"title": name},
        "Signal": {"quantity": quantity_of(obj, name)},
        "Sample": sample,
    }
    if experiment is not None:
        tem: dict[str, Any] = {"beam_energy": float(experiment.beam_energy.m_as("keV"))}
        eds = experiment.eds
        if eds.probe_current is not None:
            tem["beam_current"] = float(eds.probe_current.m_as("nA"))
        if eds.dwell_time is not None:
            tem["Detector"] = {"EDS": {"live_time": float(eds.dwell_time.m_as("s"))}}
        metadata["Acquisition_instrument"] = {"TEM": tem}
    metadata["edstomo"] = {
        "object": type(obj).__name__,
        "name": name,
        "experiment": experiment.to_json() if experiment is not None else "",
        "provenance": json.dumps(provenance.jsonable(obj.provenance)),
    }
    return metadata


def _import_hyperspy() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import hyperspy.api as hs
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(f'writing .hspy files needs HyperSpy ({error}); pip install "edstomo[microscope]"') from None
    return hs


def _tilt_axis(angles: np.ndarray, size: int) -> dict[str, Any]:
    steps = np.diff(angles)
    if angles.size > 1 and np.allclose(steps, steps[0]):
        axis = {"scale": float(steps[0]), "offset": float(angles[0])}
    elif angles.size > 1:
        axis = {"axis": angles}
    else:
        axis = {"scale": 1.0, "offset": float(angles[0])}
    return {"name": "Projections", "units": "degrees", "size": size, "navigate": True, **axis}


def _axes(obj: Saved, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    pixel = float(obj.pixel_size.m_as("nm"))

    def length(name: str, size: int, navigate: bool = False) -> dict[str, Any]:
        return {"name": name, "units": "nm", "scale": pixel, "offset": 0.0, "size": size, "navigate": navigate}

    if isinstance(obj, TiltSeries):
        return [_tilt_axis(obj.angles.m_as("deg"), shape[0]), length("y", shape[1]), length("x", shape[2])]
    return [length("x", shape[0], navigate=True), length("z", shape[1]), length("y", shape[2])]


def to_hyperspy(obj: Saved) -> dict[str, Any]:
    """HyperSpy ``Signal2D`` stacks (float32), one per channel or element, with axes and metadata.

    A tilt series gives etspy ``TomoStack`` signals, volumes and maps give
    ``RecStack`` signals (see the module docstring); with etspy installed they
    are those classes, without it plain ``Signal2D`` with the same
    ``signal_type``.
    """
    hs = _import_hyperspy()
    signals = {}
    signal_type = "TomoStack" if isinstance(obj, TiltSeries) else "RecStack"
    for name, stack in stacks(obj).items():
        signal = hs.signals.Signal2D(np.ascontiguousarray(stack, dtype=np.float32), axes=_axes(obj, stack.shape))
        signal.metadata.add_dictionary(hyperspy_metadata(obj, name))
        with warnings.catch_warnings():  # without etspy HyperSpy warns that it does not know the type
            warnings.simplefilter("ignore")
            signal.set_signal_type(signal_type)
        tomography = tomography_metadata(obj) if isinstance(obj, TiltSeries) else None
        if tomography is not None:
            signal.metadata.add_dictionary({"Tomography": tomography})
        if tomography is not None and isinstance(getattr(type(signal), "tilts", None), property):
            # an etspy TomoStack keeps tilts and shifts as signals of its own (zero on conversion)
            signal.tilts = np.asarray(tomography["tilts"], dtype=float)
            signal.shifts = np.asarray(tomography["shifts"], dtype=float)
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
    """Write ``{prefix}_{name}.tif`` per channel or element (float32 ImageJ stacks, spacing in nm)."""
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


def _stored_at(products: Mapping[str, Any], name: str, path: Path) -> bool:
    """Whether ``products[name]`` is already the file ``path`` (written piece by piece by the pipeline)."""
    where = getattr(products, "path", None)
    stored = where(name) if callable(where) else None
    return stored is not None and Path(stored).resolve() == path.resolve()


def _write_products(products: Mapping[str, Saved], out: Path, prefix: str, *, hspy: bool, tiff: bool) -> list[Path]:
    """``<prefix>_<method>.h5`` per method (unless already there), and the .hspy/.tif stacks when asked."""
    written: list[Path] = []
    for method in products:
        path = out / f"{prefix}_{method}.h5"
        if not _stored_at(products, method, path):
            save_hdf5(products[method], path)
        written.append(path)
        if hspy or tiff:
            obj = products[method]  # loaded whole for these formats (one channel or element at a time in a file)
            if hspy:
                written += save_hspy(obj, out / "hspy", f"{prefix}_{method}")
            if tiff:
                written += save_tiff(obj, out / "tiff", f"{prefix}_{method}")
            del obj
    return written


def export_maps(
    maps: Mapping[str, CompositionMaps], out: str | Path, *, tiff: bool = False, hspy: bool = False
) -> list[Path]:
    """Write weight-fraction maps per method: ``maps_<method>.h5`` and, when asked,
    ``hspy/maps_<method>_<element>.hspy`` (``hspy=True``) and ``tiff/maps_<method>_<element>.tif`` (``tiff=True``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return _write_products(maps, out, "maps", hspy=hspy, tiff=tiff)


def export_all(
    out: str | Path,
    *,
    raw: TiltSeries | None = None,
    series: TiltSeries | None = None,
    volumes: Mapping[str, Volume] | None = None,
    maps: Mapping[str, CompositionMaps] | None = None,
    tiff: bool = False,
    hspy: bool = False,
) -> list[Path]:
    """Write the results of a reconstruction into ``out``; returns the paths written.

    Parameters
    ----------
    out : folder
        Created if needed.
    raw : TiltSeries, optional
        The series as loaded: ``tilt_series_raw.h5``.
    series : TiltSeries, optional
        The series the solvers saw (aligned, normalised): ``tilt_series_aligned.h5``
        and ``hspy/tilts_<channel>.hspy`` (etspy ``TomoStack``).
    volumes : {method: Volume}, optional
        ``volume_<method>.h5`` (and ``hspy/volume_<method>_<channel>.hspy`` with ``hspy=True``).
        Entries that a :class:`~edstomo_microscope.slicewise.Products` keeps in that very file are not rewritten.
    maps : {method: CompositionMaps}, optional
        See :func:`export_maps`.
    tiff : bool
        Also write float32 TIFF stacks of the volumes and maps into ``tiff/``.
    hspy : bool
        Also write the volumes and maps as HyperSpy/etspy stacks into ``hspy/``
        (the tilt series always are: they are small and what etspy reconstructs).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if raw is not None:
        written.append(save_hdf5(raw, out / "tilt_series_raw.h5"))
    if series is not None:
        written.append(save_hdf5(series, out / "tilt_series_aligned.h5"))
        written += save_hspy(series, out / "hspy", "tilts")
    written += _write_products(volumes or {}, out, "volume", hspy=hspy, tiff=tiff)
    written += export_maps(maps or {}, out, tiff=tiff, hspy=hspy)
    return written


def tiff_from_folder(out: str | Path) -> list[Path]:
    """TIFF stacks (``tiff/``) of every ``volume_<method>.h5`` and ``maps_<method>.h5`` in a result folder."""
    return _from_folder(Path(out), "tiff", save_tiff)


def _from_folder(out: Path, folder: str, writer: Any) -> list[Path]:
    from edstomo.data import load

    written: list[Path] = []
    for path in sorted(out.glob("volume_*.h5")) + sorted(out.glob("maps_*.h5")):
        content = load(path)
        if isinstance(content, (Volume, CompositionMaps)):
            written += writer(content, out / folder, path.stem)
        del content
    return written


def output_size(paths: Iterable[str | Path]) -> int:
    """Total size in bytes of the files among ``paths`` that exist (each counted once)."""
    unique = {Path(p).resolve() for p in paths}
    return sum(p.stat().st_size for p in unique if p.is_file())


def format_size(size: int) -> str:
    """A byte count for people: ``"12.3 MB"`` (decimal units)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"size: {size!r} must be a non-negative number of bytes")
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"
