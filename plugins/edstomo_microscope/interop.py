"""Tilt series from HyperSpy and etspy objects in memory: the other way into the microscope pipeline.

* :func:`from_image_stacks` — image stacks per channel, e.g. etspy ``TomoStack``
  signals (or any HyperSpy ``Signal2D`` with one navigation axis of tilts): a
  HAADF stack and/or background-subtracted line maps. etspy's geometry is
  assumed (rows across the tilt axis, columns along it, as
  :mod:`.export` writes them), so an exported ``tilts_<channel>.hspy`` read by
  ``etspy.load`` comes back as the series it was.
* :func:`from_eds_stack` — a HyperSpy/exSpy ``EDSTEMSpectrum`` stack (navigation
  x, y and tilt; the spectra), optionally with a HAADF image stack: the
  spectra become background-subtracted line maps exactly as for files
  (:func:`~edstomo_microscope.loading.load_tilt_series`, which reads the stack
  from a temporary ``.hspy`` file), the HAADF images are cropped, rebinned and
  oriented the same way.

Both return a :class:`~edstomo.data.TiltSeries` with an
:class:`~edstomo.experiment.Experiment` for
:func:`~edstomo_microscope.pipeline.run_pipeline`. Values missing from the
metadata and not given are assumed as for files (with a
:class:`~edstomo_microscope.metadata.MetadataWarning`); none of them changes a
weight fraction.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edstomo import provenance
from edstomo.data import HAADF, TiltSeries
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from edstomo.units import as_quantity, format_quantity, ureg

from .loading import DEFAULT_LINES, load_tilt_series
from .metadata import ValueSources

__all__ = ["from_eds_stack", "from_image_stacks", "stack_angles"]


def _meta(signal: Any, path: str) -> Any:
    return signal.metadata.get_item(path) if signal.metadata.has_item(path) else None


def stack_angles(signal: Any) -> np.ndarray:
    """Tilt angles (deg) of an image stack: etspy's ``tilts``, ``metadata.Tomography.tilts`` or a degree axis.

    Raises
    ------
    ValueError
        When the stack holds none (or only zeros, etspy's placeholder).
    """
    candidates = []
    tilts = getattr(signal, "tilts", None)
    if tilts is not None and hasattr(tilts, "data"):
        candidates.append(np.asarray(tilts.data, dtype=float).ravel())
    recorded = _meta(signal, "Tomography.tilts")
    if recorded is not None:  # an array, or etspy's TomoTilts signal
        values = recorded.data if hasattr(recorded, "axes_manager") else recorded
        candidates.append(np.asarray(values, dtype=float).ravel())
    axis = signal.axes_manager.navigation_axes[0] if signal.axes_manager.navigation_dimension == 1 else None
    if axis is not None and "deg" in str(axis.units).lower():
        candidates.append(np.asarray(axis.axis, dtype=float))
    count = signal.axes_manager.navigation_size
    for values in candidates:
        if values.size == count and np.any(values != 0):
            return values
    raise ValueError(
        f"signal {_meta(signal, 'General.title')!r}: no tilt angles (etspy tilts, metadata.Tomography.tilts or a "
        "navigation axis in degrees); give angles"
    )


def _pixel_size(signal: Any) -> Any:
    axes = signal.axes_manager.signal_axes
    scales = []
    for axis in axes:
        unit = str(axis.units)
        if unit in ("", "<undefined>", "Undefined", "pixels", "px"):
            return None
        scales.append(as_quantity(f"{axis.scale} {unit.replace('µ', 'u')}", "nm", "pixel_size").to("nm"))
    if not np.isclose(scales[0].m_as("nm"), scales[1].m_as("nm"), rtol=1e-6):
        raise ValueError(f"pixel_size: the image pixels are not square ({scales[0]} × {scales[1]}); give pixel_size")
    return scales[0]


def _instrument(signal: Any, leaf: str, unit: str) -> Any:
    for instrument in ("TEM", "SEM"):
        value = _meta(signal, f"Acquisition_instrument.{instrument}.{leaf}")
        if value is not None:
            return ureg.Quantity(float(value), unit)
    return None


def from_image_stacks(
    stacks: Mapping[str, Any],
    *,
    angles: Any = None,
    beam_energy: Any = None,
    pixel_size: Any = None,
    probe_current: Any = None,
    dwell_time: Any = None,
    solid_angle: Any = None,
) -> TiltSeries:
    """A tilt series from image stacks per channel (etspy ``TomoStack`` or HyperSpy ``Signal2D``).

    Parameters
    ----------
    stacks : {channel: signal}
        ``"HAADF"`` and/or line names (``"Fe_Ka"``) mapped to stacks of shape
        (tilts, rows across the tilt axis, columns along it), all of one shape.
    angles : Quantity, optional
        Tilt angles; default :func:`stack_angles` of the first stack (all must agree).
    beam_energy, pixel_size, probe_current, dwell_time, solid_angle : Quantity or str, optional
        Replace or supply the metadata (``Acquisition_instrument.TEM.beam_energy``,
        the image axes, ``beam_current``, ``Detector.EDS.live_time`` per pixel).

    Returns
    -------
    TiltSeries
        Channels in the given order, with a provenance step ``import``.
    """
    if not stacks:
        raise ValueError("stacks: give at least one channel")
    channels = list(stacks)
    signals = [stacks[c] for c in channels]
    shapes = {tuple(np.shape(s.data)) for s in signals}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"stacks: need image stacks of one shape (tilts, rows, columns); got {sorted(shapes)}")
    if angles is not None:
        values = np.asarray(as_quantity(angles, "deg", "angles").m_as("deg"), dtype=float).ravel()
    else:
        values = stack_angles(signals[0])
        for channel, signal in zip(channels[1:], signals[1:]):
            if not np.allclose(stack_angles(signal), values):
                raise ValueError(f"stacks: the angles of {channel!r} differ from those of {channels[0]!r}")
    first = signals[0]
    sources = ValueSources()
    energy = sources.resolve("beam_energy", beam_energy, _instrument(first, "beam_energy", "keV"), "keV")
    pixel = sources.resolve("pixel_size", pixel_size, _pixel_size(first), "nm")
    current = sources.resolve("probe_current", probe_current, _instrument(first, "beam_current", "nA"), "pA")
    dwell = sources.resolve("dwell_time", dwell_time, _instrument(first, "Detector.EDS.live_time", "s"), "s")
    solid = sources.resolve("solid_angle", solid_angle, None, "sr")
    sources.warn()
    data = np.stack([np.asarray(s.data, dtype=np.float64) for s in signals])
    data = np.nan_to_num(np.clip(data, 0.0, None), nan=0.0, posinf=0.0)
    lines = [c for c in channels if c != HAADF]
    if not lines:
        raise ValueError(f"stacks: channels {channels} hold no EDS line; an experiment needs at least one")
    positions, slices = data.shape[2:]
    detector = {"probe_current": current, "dwell_time": dwell}
    experiment = Experiment(
        name=str(_meta(first, "General.title") or "imported"),
        description="imported from HyperSpy/etspy image stacks by edstomo_microscope",
        beam_energy=energy,
        lines=lines,
        tilts=TiltScheme(angles=ureg.Quantity(values, "deg")),
        scan=Scan(positions=positions, pixel_size=pixel, slices=slices),
        haadf=HAADFDetector(**detector) if HAADF in channels else None,
        eds=EDSDetector(**detector, solid_angle=solid),
    )
    record = provenance.step(
        "import",
        "edstomo_microscope",
        source="image stacks in memory",
        kinds={c: type(s).__name__ for c, s in zip(channels, signals)},
        axes="positions = image rows, slices = image columns (etspy geometry)",
        values=sources.to_dict(),
        pixel_size=format_quantity(pixel),
    )
    return TiltSeries(data, channels, ureg.Quantity(values, "deg"), pixel, experiment=experiment, provenance=[record])


def from_eds_stack(
    eds: Any,
    haadf: Any = None,
    lines: Sequence[str] = DEFAULT_LINES,
    *,
    rebin: int = 1,
    crop: tuple[int, int, int, int] | None = None,
    tilt_axis: str = "vertical",
    **options: Any,
) -> TiltSeries:
    """A tilt series from an ``EDSTEMSpectrum`` stack in memory (navigation x, y, tilt), and a HAADF stack.

    Parameters
    ----------
    eds : EDSTEMSpectrum
        Spectrum images of every tilt: navigation (columns, rows, tilts), signal energy.
        Angles come from ``metadata.Tomography.tilts`` or a tilt axis in degrees,
        unless ``angles`` is given.
    haadf : Signal2D, optional
        HAADF images (tilts | columns, rows) of the same scans, in the same tilt order.
    lines : list of str
        X-ray lines to map.
    rebin, crop, tilt_axis
        As for :func:`~edstomo_microscope.loading.load_tilt_series`; applied to
        the HAADF images too.
    **options
        Further keywords of :func:`~edstomo_microscope.loading.load_tilt_series`
        (``angles``, ``beam_energy``, ``background``, ``smooth``, …).
    """
    if eds.axes_manager.navigation_dimension != 3:
        raise ValueError(f"eds: navigation shape {eds.axes_manager.navigation_shape}; expected (columns, rows, tilts)")
    with tempfile.TemporaryDirectory(prefix="edstomo-import-") as folder:
        path = Path(folder) / "eds_stack.hspy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            eds.save(path, file_format="HSPY")
        series = load_tilt_series(path, lines, rebin=rebin, crop=crop, tilt_axis=tilt_axis, haadf=False, **options)
    if haadf is None:
        return series
    images = np.asarray(haadf.data, dtype=np.float64)
    columns, rows, count = eds.axes_manager.navigation_shape
    if images.shape != (count, rows, columns):
        raise ValueError(f"haadf: shape {images.shape}; expected (tilts, rows, columns) = {(count, rows, columns)}")
    images = _reduced(images, crop, rebin)
    order = _order(series, count)
    images = images[order]
    oriented = np.transpose(images, (0, 2, 1)) if tilt_axis == "vertical" else images
    if oriented.shape[1:] != series.data.shape[2:]:
        raise ValueError(f"haadf: reduced to {oriented.shape[1:]}, the line maps are {series.data.shape[2:]}")
    oriented = np.nan_to_num(np.clip(oriented, 0.0, None), nan=0.0, posinf=0.0)
    experiment = series.experiment
    if experiment is not None:
        dose = {"probe_current": experiment.eds.probe_current, "dwell_time": experiment.eds.dwell_time}
        experiment = experiment.model_copy(update={"haadf": HAADFDetector(**dose)})
    record = provenance.step("import", "edstomo_microscope", source="EDS and HAADF stacks in memory", haadf=True)
    return series.with_step(
        record,
        data=np.concatenate([oriented[None], series.data]),
        channels=[HAADF, *series.channels],
        experiment=experiment,
    )


def _reduced(images: np.ndarray, crop: tuple[int, int, int, int] | None, rebin: int) -> np.ndarray:
    """Crop rows y0:y1 and columns x0:x1 of every image, then sum rebin × rebin blocks (as the loader does)."""
    _, rows, columns = images.shape
    y0, y1, x0, x1 = crop if crop is not None else (0, rows, 0, columns)
    y1 = y0 + (y1 - y0) // rebin * rebin
    x1 = x0 + (x1 - x0) // rebin * rebin
    cut = images[:, y0:y1, x0:x1]
    t, r, c = cut.shape
    return cut.reshape(t, r // rebin, rebin, c // rebin, rebin).sum(axis=(2, 4))


def _order(series: TiltSeries, count: int) -> np.ndarray:
    """The stack indices of the series' tilts (the loader sorts them by angle)."""
    sources = next(step["parameters"]["sources"] for step in series.provenance if step.get("action") == "load")
    indices = [int(source.rsplit("[", 1)[1].rstrip("]")) for source in sources]
    if sorted(indices) != list(range(count)):
        raise ValueError(f"eds: the loaded tilts {indices} do not cover the {count} tilts of the stack")
    return np.asarray(indices)
