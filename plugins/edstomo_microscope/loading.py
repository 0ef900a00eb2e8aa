"""Load a tilt series of HAADF images and EDS spectrum images into an :class:`~edstomo.data.TiltSeries`.

Files are read by HyperSpy/RosettaSciIO (the optional extra ``microscope``:
``pip install "edstomo[microscope]"``), imported only when a file is read:

* one file per tilt (Bruker ``.bcf``, Velox ``.emd``, HyperSpy ``.hspy``), each
  holding an EDS spectrum image and (optionally) a HAADF image; or
* one stacked file whose EDS spectrum image has a third navigation axis (the tilts).

Each file is reduced as soon as it is read — crop, spatial rebinning (sum),
line maps (:mod:`.linemaps`) — so only the small maps stay in memory.

Files are untrusted: each is read in a separate reader process (:mod:`.reader`),
and a Bruker file's container is checked first (a truncated ``.bcf`` makes the
compiled reader crash the process). A file that cannot be read gives
``"FILE: cannot be read (…)"``; with several files, every file is tried and
one error lists each unreadable one — nothing is loaded, since a series with
missing tilts is another experiment (leave the files out deliberately).

Tilt angles come, in this order of preference, from the ``angles`` argument,
from the stage-tilt metadata (when it differs between files: a series whose
files all report the same stage tilt, as Bruker files written with the tilt
left at 0 do, carries no tilt information), from ``metadata.Tomography.tilts``
or a tilt axis in degrees (stacks), and from the file names (the number at the
end of the name: ``-10.bcf``, ``tilt_+35.5deg.emd``; ``name_pattern`` sets
another rule). The files are sorted by angle.

Orientation: ``tilt_axis="vertical"`` (the tilt axis runs along the image
rows' direction, i.e. down the image) makes the image columns the tilt series'
*positions* and the image rows its *slices*; ``"horizontal"`` swaps them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from edstomo import provenance
from edstomo.data import HAADF, TiltSeries
from edstomo.errors import EdstomoError, InputError
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from edstomo.lines import element_density
from edstomo.units import as_quantity, format_quantity, ureg

from . import reader
from .linefit import (
    DEFAULT_FWHM_MN_EV,
    SpectrumCube,
    check_lines_in_range,
    energy_axis,
    fit_series,
    metadata_resolution,
)
from .linemaps import extract_line_maps
from .metadata import AcquisitionMetadata, ValueSources, read_metadata
from .reader import UnreadableFileError, cannot_read

__all__ = [
    "DEFAULT_LINES",
    "NAME_PATTERN",
    "SUFFIXES",
    "TiltImages",
    "angle_from_name",
    "find_files",
    "load_tilt_series",
    "read_tilt_file",
]

#: Lines mapped by default: the interplanetary-dust elements (C, O, Mg, Si, S, Fe,
#: Ni) and Pt, the FIB protective layer that dominates the HAADF signal of a FIB
#: section (leaving it out would force HEBT to explain it with the other elements).
DEFAULT_LINES: tuple[str, ...] = ("C_Ka", "O_Ka", "Mg_Ka", "Si_Ka", "S_Ka", "Fe_Ka", "Ni_Ka", "Pt_La")

#: File types read one tilt per file (or one stack per file).
SUFFIXES: tuple[str, ...] = (".bcf", ".emd", ".hspy", ".zspy")

#: Default rule for angles in file names: a signed number at the end of the name, optionally followed by "deg".
NAME_PATTERN = r"(?P<angle>[-+]?\d+(?:\.\d+)?)\s*(?:deg|degrees|°)?$"

TILT_AXES = ("vertical", "horizontal")

#: How line intensities are measured: family fitting (:mod:`.linefit`) or window integration (:mod:`.linemaps`).
INTENSITY_METHODS = ("fit", "window")

#: A progress report: (stage, done, total).
Progress = Callable[[str, int, int], None]


@dataclass
class TiltImages:
    """The reduced content of one tilt: HAADF image, line maps (or the spectra to fit), metadata.

    ``haadf`` and every map have shape (rows, columns) of the (cropped, rebinned) scan.
    With ``intensities="fit"`` the maps are made for the whole series at once:
    ``spectra`` holds the tilt's spectrum image until then.
    """

    source: str
    haadf: np.ndarray | None
    maps: dict[str, np.ndarray]
    metadata: AcquisitionMetadata
    scan_pixels: int
    line_record: dict[str, Any]
    stack_tilt: float | None = None
    notes: list[str] = field(default_factory=list)
    spectra: SpectrumCube | None = None


def _import_hyperspy() -> Any:
    try:
        with warnings.catch_warnings():  # HyperSpy warns about its own deprecated imports on first use
            warnings.simplefilter("ignore", DeprecationWarning)
            import exspy  # noqa: F401  (registers the EDS signal types with HyperSpy)
            import hyperspy.api as hs
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"reading microscope files needs HyperSpy, exSpy and RosettaSciIO ({error}); "
            'install them with: pip install "edstomo[microscope]"'
        ) from None
    return hs


def find_files(source: str | Path | Sequence[str | Path], suffixes: Sequence[str] = SUFFIXES) -> list[Path]:
    """The tilt files of a directory (by suffix) or of an explicit list (each checked to exist).

    Raises
    ------
    FileNotFoundError
        Naming the missing file or folder, or the folder that holds no tilt file.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise FileNotFoundError(f"source: folder {str(path)!r} holds no {'/'.join(suffixes)} file")
            return files
        source = [path]
    files = [Path(p) for p in source]
    if not files:
        raise FileNotFoundError("source: the list of files is empty")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"source: file {str(path)!r} does not exist")
    return files


def angle_from_name(path: str | Path, pattern: str = NAME_PATTERN) -> float | None:
    """The tilt angle (deg) written in a file name, or None when the name holds none."""
    match = re.search(pattern, Path(path).stem)
    if match is None:
        return None
    try:
        return float(match.group("angle"))
    except (IndexError, ValueError):
        return None


def _as_list(loaded: Any) -> list[Any]:
    return list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]


def _is_eds(signal: Any) -> bool:
    return str(signal.metadata.get_item("Signal.signal_type", "")).startswith("EDS")


def _pick_haadf(images: list[Any], title: str | None, path: Path) -> Any | None:
    if not images:
        return None
    titles = [str(s.metadata.get_item("General.title", "")) for s in images]
    wanted = [title] if title else ["HAADF", "ADF", "DF"]
    for key in wanted:
        for signal, name in zip(images, titles):
            if key.lower() in name.lower():
                return signal
    if title:
        raise InputError(f"{path}: no image titled {title!r}; its images are {titles}")
    if len(images) == 1:
        return images[0]
    raise InputError(f"{path}: several images {titles} and none is titled HAADF; choose one with haadf_title")


def _read(path: Path, cutoff_at_kV: float | None) -> list[Any]:
    hs = _import_hyperspy()
    kwargs: dict[str, Any] = {}
    if path.suffix.lower() == ".bcf":
        _check_bcf(path)
        if cutoff_at_kV is not None:
            kwargs["cutoff_at_kV"] = cutoff_at_kV
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _as_list(hs.load(str(path), **kwargs))
    except Exception as error:  # readers raise many kinds of errors; name the file in every case
        raise cannot_read(path, error) from None


def _check_bcf(path: Path) -> None:
    """Refuse a Bruker file whose container is damaged or whose chunks lie beyond its end (truncated).

    A ``.bcf`` is a chunked container (SFS); its table of contents lists where
    each chunk of each inner file starts. Read through RosettaSciIO's SFS
    parser; when that parser is not where it is expected (another version),
    the check is skipped and the reader's own errors apply.
    """
    try:
        from rsciio.bruker._api import SFS_reader
    except ImportError:  # pragma: no cover - depends on the RosettaSciIO version
        return
    size = path.stat().st_size
    try:
        container = SFS_reader(str(path))
        items = list(_sfs_items(container.vfs))
        starts = [int(max(item.pointers)) for item in items if len(item.pointers)]
        chunk = int(container.chunksize)
    except Exception as error:  # a damaged header raises struct, XML, index errors…
        raise cannot_read(path, f"its Bruker container is damaged: {type(error).__name__}: {error}") from None
    header = 32  # a pointer points past the 32-byte header of its chunk
    end = max(starts, default=0) - header + chunk
    if end > size:
        raise cannot_read(path, f"the file is truncated: it holds {size} bytes, its table of contents needs {end}")


def _sfs_items(tree: Mapping[str, Any]) -> Iterable[Any]:
    for value in tree.values():
        if isinstance(value, Mapping):
            yield from _sfs_items(value)
        else:
            yield value


def _reduce(signal: Any, crop: tuple[int, int, int, int] | None, rebin: int, spectral: bool) -> Any:
    """Crop rows y0:y1, columns x0:x1, then sum blocks of rebin × rebin pixels."""
    axes = signal.axes_manager.navigation_axes if spectral else signal.axes_manager.signal_axes
    columns, rows = axes[0].size, axes[1].size
    y0, y1, x0, x1 = crop if crop is not None else (0, rows, 0, columns)
    if not (0 <= y0 < y1 <= rows and 0 <= x0 < x1 <= columns):
        raise InputError(f"crop: {crop!r} is outside the {rows} × {columns} scan (rows y0:y1, columns x0:x1)")
    y1 = y0 + (y1 - y0) // rebin * rebin
    x1 = x0 + (x1 - x0) // rebin * rebin
    if y1 == y0 or x1 == x0:
        raise InputError(f"rebin: {rebin} exceeds the cropped scan of {y1 - y0} × {x1 - x0} pixels")
    index = signal.inav if spectral else signal.isig
    reduced = index[x0:x1, y0:y1]
    if rebin > 1:
        scale = (rebin, rebin, 1) if spectral else (rebin, rebin)
        reduced = reduced.rebin(scale=scale, dtype=_sum_type(reduced.data.dtype, rebin * rebin))
    return reduced


def _sum_type(dtype: np.dtype, terms: int) -> np.dtype | None:
    """The smallest unsigned type that holds a sum of ``terms`` values of an unsigned ``dtype`` (the same sums as
    NumPy's uint64, in a fraction of the memory: a spectrum image of 8-bit counts rebinned by 2 stays 16-bit, not
    64-bit); None (NumPy's own sum type) for any other type."""
    dtype = np.dtype(dtype)
    if dtype.kind != "u":
        return None
    largest = int(np.iinfo(dtype).max) * terms
    return next(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(t).max >= largest)


def _stack_tilts(signals: list[Any], count: int) -> list[float] | None:
    for signal in signals:
        if signal.metadata.has_item("Tomography.tilts"):
            tilts = np.asarray(signal.metadata.get_item("Tomography.tilts"), dtype=float).ravel()
            if tilts.size == count:
                return tilts.tolist()
    axis = next(s for s in signals if _is_eds(s)).axes_manager.navigation_axes[2]
    if "deg" in str(axis.units).lower():
        return [float(v) for v in axis.axis]
    return None


def read_tilt_file(
    path: str | Path,
    lines: Sequence[str],
    *,
    rebin: int = 1,
    crop: tuple[int, int, int, int] | None = None,
    cutoff_at_kV: float | None = None,
    haadf_title: str | None = None,
    background: bool = True,
    integration_width: float = 2.0,
    background_windows: Mapping[str, Sequence[float]] | None = None,
    elements: Iterable[str] = (),
    smooth: float = 0.0,
    intensities: str = "window",
) -> list[TiltImages]:
    """Read one file and reduce it to HAADF image and line maps: one entry per tilt it holds.

    Parameters
    ----------
    path : str or Path
        A ``.bcf``/``.emd``/``.hspy`` file with one tilt, or a stack of tilts.
    lines : list of str
        X-ray lines to map.
    rebin : int
        Spatial rebinning factor (sum of rebin × rebin pixels), ≥ 1.
    crop : (y0, y1, x0, x1), optional
        Region of the scan kept, in original pixels (rows y0:y1, columns x0:x1).
    cutoff_at_kV : float, optional
        Bruker files only: read the spectrum up to this energy (keV).
    haadf_title : str, optional
        Title of the HAADF image when a file holds several images.
    background, integration_width, background_windows, elements, smooth
        See :func:`edstomo_microscope.linemaps.extract_line_maps`.
    intensities : {"window", "fit"}
        ``"window"``: line maps by window integration now; ``"fit"``: keep the
        spectrum image (``TiltImages.spectra``) for :func:`~edstomo_microscope.linefit.fit_series`.
    """
    if intensities not in INTENSITY_METHODS:
        raise InputError(f"intensities: {intensities!r} must be one of {INTENSITY_METHODS}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: file {str(path)!r} does not exist")
    if isinstance(rebin, bool) or not isinstance(rebin, (int, np.integer)) or rebin < 1:
        raise InputError(f"rebin: {rebin!r} must be an integer >= 1 (pixels per block side)")
    signals = _read(path, cutoff_at_kV)
    reduction = {"rebin": int(rebin), "crop": crop, "haadf_title": haadf_title, "background": background}
    maps = {"integration_width": integration_width, "background_windows": background_windows, "elements": elements}
    try:
        return _tilts_of(path, signals, lines, **reduction, **maps, smooth=smooth, intensities=intensities)
    except EdstomoError:
        raise
    except Exception as error:  # data read lazily fails here when the file is damaged
        raise cannot_read(path, error) from None


def _tilts_of(
    path: Path,
    signals: list[Any],
    lines: Sequence[str],
    *,
    rebin: int,
    crop: tuple[int, int, int, int] | None,
    haadf_title: str | None,
    background: bool,
    integration_width: float,
    background_windows: Mapping[str, Sequence[float]] | None,
    elements: Iterable[str],
    smooth: float,
    intensities: str,
) -> list[TiltImages]:
    """The tilts of the signals read from one file, reduced to HAADF images and line maps (or spectra)."""
    eds_all = [s for s in signals if _is_eds(s) and s.axes_manager.navigation_dimension >= 2]
    if not eds_all:
        kinds = [f"{type(s).__name__}({s.metadata.get_item('General.title', '')})" for s in signals]
        raise InputError(f"{path}: holds no EDS spectrum image; it holds {kinds}")
    eds = eds_all[0]
    images = [s for s in signals if not _is_eds(s) and s.axes_manager.signal_dimension == 2]
    haadf = _pick_haadf(images, haadf_title, path)
    stacked = eds.axes_manager.navigation_dimension == 3
    if eds.axes_manager.navigation_dimension > 3:
        raise InputError(
            f"{path}: EDS data has {eds.axes_manager.navigation_dimension} navigation axes; expected 2 or 3"
        )
    count = eds.axes_manager.navigation_shape[2] if stacked else 1
    tilts = _stack_tilts(signals, count) if stacked else None
    results = []
    for index in range(count):
        eds_i = eds.inav[:, :, index] if stacked else eds
        haadf_i = (
            haadf.inav[index] if stacked and haadf is not None and haadf.axes_manager.navigation_dimension else haadf
        )
        source = f"{path}[{index}]" if stacked else str(path)
        metadata = read_metadata(eds_i, haadf_i, source)
        scan_pixels = int(np.prod(eds_i.axes_manager.navigation_shape))
        if haadf_i is not None and tuple(haadf_i.axes_manager.signal_shape) != tuple(
            eds_i.axes_manager.navigation_shape
        ):
            raise InputError(
                f"{source}: the HAADF image is {haadf_i.axes_manager.signal_shape} pixels but the EDS scan is "
                f"{eds_i.axes_manager.navigation_shape}; they must match (columns, rows)"
            )
        reduced = _reduce(eds_i, crop, int(rebin), spectral=True)
        spectra, maps, line_record = None, {}, {}
        if intensities == "fit":
            spectra = SpectrumCube.from_signal(reduced, source)
        else:
            offset, scale, channels = energy_axis(reduced, source)
            span = (offset, offset + scale * (channels - 1))
            resolution = metadata_resolution(reduced) or DEFAULT_FWHM_MN_EV
            check_lines_in_range(lines, span, resolution, f"the spectrum of {source}")
            extracted = extract_line_maps(
                reduced,
                lines,
                background=background,
                integration_width=integration_width,
                background_windows=background_windows,
                elements=elements,
                smooth=smooth,
            )
            maps, line_record = extracted.maps, extracted.record()
        image = None
        if haadf_i is not None:
            image = np.asarray(_reduce(haadf_i, crop, int(rebin), spectral=False).data, dtype=np.float64)
            image = np.nan_to_num(np.clip(image, 0.0, None), nan=0.0, posinf=0.0)
        results.append(
            TiltImages(
                source=source,
                haadf=image,
                maps=maps,
                metadata=metadata,
                scan_pixels=scan_pixels,
                line_record=line_record,
                stack_tilt=None if tilts is None else tilts[index],
                spectra=spectra,
            )
        )
    return results


def _resolve_angles(tilts: list[TiltImages], angles: Any, pattern: str) -> tuple[np.ndarray, str, list[str]]:
    """Tilt angles (deg), where they came from, and notes."""
    notes: list[str] = []
    count = len(tilts)
    if angles is not None:
        values = np.asarray(as_quantity(angles, "deg", "angles").m_as("deg"), dtype=float).ravel()
        if values.size != count:
            raise InputError(f"angles: {values.size} angles given for {count} tilts")
        return values, "given", notes
    stage = [t.metadata.tilt for t in tilts]
    if all(s is not None for s in stage):
        values = np.array([s.m_as("deg") for s in stage])
        if count == 1 or np.ptp(values) > 0:
            return values, "metadata", notes
        notes.append(
            f"stage-tilt metadata reads {values[0]:g} deg for every file, which is no tilt series; it was ignored"
        )
    if all(t.stack_tilt is not None for t in tilts):
        return np.array([t.stack_tilt for t in tilts], dtype=float), "stack metadata", notes
    named = [angle_from_name(Path(t.source), pattern) for t in tilts]
    missing = [t.source for t, a in zip(tilts, named) if a is None]
    if not missing:
        notes.append("tilt angles taken from the file names")
        return np.array(named, dtype=float), "file names", notes
    raise InputError(
        f"angles: no tilt angles in the metadata and none in the file names of {missing[:3]}"
        f"{' …' if len(missing) > 3 else ''}; give them with angles (a quantity in deg)"
    )


def _consistent(name: str, values: list[Any], unit: str) -> Any:
    """One value for the series from per-tilt values (None if absent); an error if they disagree."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    magnitudes = np.array([v.m_as(unit) for v in present])
    if np.ptp(magnitudes) > 1e-6 * abs(magnitudes).max():
        raise InputError(f"{name}: the files disagree ({sorted(set(magnitudes.round(6)))} {unit}); give it explicitly")
    return present[0]


#: Density assumed for a window layer of an element that is a gas at room temperature (g/cm³).
GAS_LAYER_DENSITY = "1.0 g/cm**3"


def detector_geometry(metadata: list[AcquisitionMetadata], sources: ValueSources, solid: Any) -> dict[str, Any]:
    """The EDS detectors' geometry and window from the files (``{}`` when they give no elevation).

    Elevation and azimuth come from the metadata (recorded in ``sources`` as
    ``"metadata"``); a ``SuperX`` detector type gives four heads at the azimuth
    + 0°, 90°, 180°, 270°, each a quarter of the solid angle (``"derived"``); Bruker
    ``DetLayers`` become each head's window and ``DetectorThickness`` its sensor,
    for the layered efficiency model.
    """
    elevation = _consistent("elevation", [m.elevation for m in metadata], "deg")
    if elevation is None:
        sources.notes.append("eds: the files give no detector elevation; absorption correction needs it")
        return {}
    azimuth = _consistent("azimuth", [m.azimuth for m in metadata], "deg")
    sources.set("elevation", elevation, "metadata")
    if azimuth is not None:
        sources.set("azimuth", azimuth, "metadata")
    else:
        azimuth = ureg.Quantity(0.0, "deg")
        sources.set(
            "azimuth", azimuth, "assumed", "azimuth: not in the files; assumed 0 deg (perpendicular to the tilt axis)"
        )
    kind = metadata[0].detector_type or ""
    count = 4 if "superx" in kind.lower().replace("-", "").replace(" ", "") else 1
    head: dict[str, Any] = {"elevation": elevation, "solid_angle": solid / count}
    window = metadata[0].window
    if window:
        layers = []
        for element, thickness in window:
            layer: dict[str, Any] = {"material": element, "thickness": f"{thickness!r} nm"}
            if element_density(element) < 0.1:
                layer["density"] = GAS_LAYER_DENSITY
            layers.append(layer)
        head["window"] = layers
        gases = [layer["material"] for layer in layers if "density" in layer]
        sources.notes.append(
            "eds window: Bruker DetLayers read as "
            + ", ".join(f"{e} {t:g} nm" for e, t in window)
            + " (thickness in µm in the file)"
            + (f"; {gases} are gases as pure elements, their layers assumed {GAS_LAYER_DENSITY}" if gases else "")
        )
    if metadata[0].sensor_thickness is not None:
        head["sensor_thickness"] = metadata[0].sensor_thickness.to("µm")
        sources.set("sensor_thickness", metadata[0].sensor_thickness, "metadata")
    if count == 4:
        sources.notes.append(
            f"eds: detector type {kind!r}: four heads at azimuth {azimuth.m_as('deg'):g} deg + 0/90/180/270 deg, "
            "each a quarter of the solid angle (derived)"
        )
    heads = [
        {**head, "name": f"{kind or 'EDS'}-{k + 1}", "azimuth": ureg.Quantity(azimuth.m_as("deg") + 90.0 * k, "deg")}
        for k in range(count)
    ]
    return {"detectors": heads}


def _dwell(tilts: list[TiltImages]) -> tuple[Any, str]:
    """Dwell time per original pixel, and how it was found (empty string if not found)."""
    direct = [t.metadata.dwell_time for t in tilts if t.metadata.dwell_time is not None]
    if direct:
        return ureg.Quantity(np.mean([d.m_as("s") for d in direct]), "s"), "metadata"
    for name in ("live_time", "real_time"):
        times = [getattr(t.metadata, name) for t in tilts]
        if all(v is not None for v in times):
            per_pixel = np.mean([v.m_as("s") / t.scan_pixels for v, t in zip(times, tilts)])
            return ureg.Quantity(per_pixel, "s"), name
    return None, ""


def load_tilt_series(
    source: str | Path | Sequence[str | Path],
    lines: Sequence[str] = DEFAULT_LINES,
    *,
    angles: Any = None,
    name_pattern: str = NAME_PATTERN,
    rebin: int = 1,
    crop: tuple[int, int, int, int] | None = None,
    tilt_axis: str = "vertical",
    cutoff_at_kV: float | str | None = "auto",
    haadf: bool = True,
    haadf_title: str | None = None,
    background: bool = True,
    integration_width: float = 2.0,
    background_windows: Mapping[str, Sequence[float]] | None = None,
    elements: Iterable[str] = (),
    smooth: float = 0.0,
    beam_energy: Any = None,
    pixel_size: Any = None,
    probe_current: Any = None,
    dwell_time: Any = None,
    solid_angle: Any = None,
    haadf_angles: tuple[Any, Any] | None = None,
    intensities: str = "fit",
    line_fit: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    isolate: bool = True,
) -> TiltSeries:
    """Load a tilt series from microscope files into a :class:`~edstomo.data.TiltSeries`.

    Parameters
    ----------
    source : folder, file, or list of files
        A folder (every ``.bcf``/``.emd``/``.hspy``/``.zspy`` file in it), one
        stacked file, or an explicit list of files (one per tilt).
    lines : list of str
        X-ray lines to map (one per element); default :data:`DEFAULT_LINES`.
    angles : Quantity or list of str, optional
        Tilt angles with their unit (e.g. ``ureg.Quantity([-10, 0, 10], "deg")``)
        in the order of ``source`` (before sorting); by default from the
        metadata or file names (see the module docstring).
    name_pattern : str
        Regular expression with a group ``angle`` that finds the angle in a file name (stem).
    rebin : int
        Spatial rebinning factor (sum of rebin × rebin pixels) of HAADF and EDS.
    crop : (y0, y1, x0, x1), optional
        Region of the scan kept, in original pixels.
    tilt_axis : {"vertical", "horizontal"}
        Direction of the tilt axis in the images (see the module docstring).
    cutoff_at_kV : float, "auto" or None
        Bruker files: read the spectrum up to this energy; ``"auto"``: 1.5 keV
        above the highest line (rounded up), None: the whole spectrum.
    haadf : bool
        Include the HAADF channel (needed by HEBT).
    haadf_title : str, optional
        Title of the HAADF image when a file holds several images.
    background, integration_width, background_windows, elements, smooth
        Line-map options, see :func:`edstomo_microscope.linemaps.extract_line_maps`
        (``elements`` and ``smooth`` also apply to fitting).
    intensities : {"fit", "window"}
        ``"fit"`` (default): fit the line families and the continuum to every
        pixel (:func:`edstomo_microscope.linefit.fit_series`), which separates
        overlapping peaks; ``"window"``: exSpy's window integration.
    line_fit : dict, optional
        Further options of :func:`~edstomo_microscope.linefit.fit_series`
        (``fwhm_mn_ev``, ``energy_range``, ``yields``, ``refine``).
    beam_energy, pixel_size, probe_current, dwell_time, solid_angle : Quantity or str, optional
        Values that replace (or supply) the metadata; ``pixel_size`` and
        ``dwell_time`` refer to the original (unbinned) pixels.
    haadf_angles : (inner, outer), optional
        HAADF collection angles; default the detector defaults of :class:`~edstomo.experiment.HAADFDetector`.
    progress : callable, optional
        ``progress(stage, done, total)``, called after each file.
    isolate : bool
        Read each file in a separate reader process (:mod:`.reader`, default):
        a reader that crashes on a damaged file then costs an error naming the
        file instead of the whole process. False reads in this process.

    Returns
    -------
    TiltSeries
        Channels ``["HAADF", *lines]`` (or ``lines`` without HAADF), shape
        (channels, tilts, positions, slices), sorted by tilt angle, with an
        Experiment built from the metadata and a provenance step ``load`` that
        records the files, the angle source, every value's origin, and the
        line windows and clipping (window integration) or the fit of the summed
        spectrum with per-line χ² and residuals (fitting).

    Raises
    ------
    UnreadableFileError
        When files cannot be read (truncated, damaged, another format, or the
        reader crashed): every file is tried, then one error names each
        unreadable file and why (``"FILE: cannot be read (…)"``); nothing is
        loaded, since a series with missing tilts is another experiment.

    Warns
    -----
    MetadataWarning
        When values had to be assumed (they are listed).
    """
    if tilt_axis not in TILT_AXES:
        raise InputError(f"tilt_axis: {tilt_axis!r} must be one of {TILT_AXES}")
    if intensities not in INTENSITY_METHODS:
        raise InputError(f"intensities: {intensities!r} must be one of {INTENSITY_METHODS}")
    files = find_files(source)
    if cutoff_at_kV == "auto":
        from edstomo.lines import parse_line

        top = max(parse_line(line).energy_kev for line in lines)
        cutoff_at_kV = float(math.ceil(top + 1.5))
    unreadable: list[UnreadableFileError] = []
    read = partial(reader.call, read_tilt_file) if isolate else read_tilt_file
    settings = {
        "rebin": rebin,
        "crop": crop,
        "cutoff_at_kV": cutoff_at_kV,
        "haadf_title": haadf_title,
        "background": background,
        "integration_width": integration_width,
        "background_windows": background_windows,
        "elements": elements,
        "smooth": smooth,
        "intensities": intensities,
    }

    def one(path: Path) -> list[TiltImages] | UnreadableFileError:
        try:
            return read(path, lines, **settings)
        except UnreadableFileError as error:
            return error

    read_files: dict[Path, list[TiltImages] | UnreadableFileError] = {}
    # with reader processes the files are read at the same time, one per reader (the results are the same)
    with ThreadPoolExecutor(max_workers=reader.readers() if isolate else 1) as pool:
        futures = {pool.submit(one, path): path for path in files}
        for done, future in enumerate(as_completed(futures), start=1):
            read_files[futures[future]] = future.result()
            if progress is not None:
                progress("load", done, len(files))
    tilts: list[TiltImages] = []
    for path in files:  # in file order, as read one after the other
        found = read_files.pop(path)
        if isinstance(found, UnreadableFileError):
            unreadable.append(found)
        else:
            tilts.extend(found)
    if unreadable:
        if len(files) == 1:
            raise unreadable[0]
        raise UnreadableFileError(
            f"{len(unreadable)} of {len(files)} files cannot be read: "
            + "; ".join(str(error) for error in unreadable)
            + ". A tilt series with missing tilts is not loaded: replace these files, or leave them out of the "
            "source (list the other files, or move these out of the folder)"
        )
    angle_values, angle_source, notes = _resolve_angles(tilts, angles, name_pattern)
    order = np.argsort(angle_values, kind="stable")
    angle_values, tilts = angle_values[order], [tilts[i] for i in order]
    if np.any(np.diff(angle_values) == 0):
        raise InputError(f"angles: the tilt angles {angle_values.tolist()} repeat a value")
    with_haadf = haadf and all(t.haadf is not None for t in tilts)
    if haadf and not with_haadf:
        missing = [t.source for t in tilts if t.haadf is None]
        notes.append(f"no HAADF image in {missing[:3]}; the series has EDS channels only (HEBT impossible)")

    sources = ValueSources(notes=list(notes))
    energy = sources.resolve(
        "beam_energy", beam_energy, _consistent("beam_energy", [t.metadata.beam_energy for t in tilts], "keV"), "keV"
    )
    pixel = sources.resolve(
        "pixel_size", pixel_size, _consistent("pixel_size", [t.metadata.pixel_size for t in tilts], "nm"), "nm"
    )
    current = sources.resolve(
        "probe_current",
        probe_current,
        _consistent("probe_current", [t.metadata.probe_current for t in tilts], "pA"),
        "pA",
    )
    dwell_found, dwell_origin = _dwell(tilts)
    dwell = sources.resolve(
        "dwell_time", dwell_time, dwell_found, "s", derived=dwell_origin in ("live_time", "real_time")
    )
    if dwell_origin == "real_time" and sources.origins["dwell_time"] == "derived":
        sources.notes.append("dwell_time: no live time in the files; derived from the real time (dead time included)")
    solid = sources.resolve("solid_angle", solid_angle, None, "sr")
    geometry = detector_geometry([t.metadata for t in tilts], sources, solid)
    sources.warn()
    if intensities == "fit":
        fitted = fit_series(
            [t.spectra for t in tilts],  # type: ignore[misc]
            lines,
            beam_energy_kev=energy.m_as("keV"),
            elements=elements,
            smooth=smooth,
            **dict(line_fit or {}),
        )
        for item, maps, record in zip(tilts, fitted.maps, fitted.records):
            item.maps, item.line_record, item.spectra = maps, record["lines"], None
        sources.notes.extend(fitted.notes)
        intensity_record: dict[str, Any] = {"line_fit": fitted.record()}
    else:
        intensity_record = {
            "line_windows": {
                line: {k: v for k, v in tilts[0].line_record[line].items() if k.endswith("kev") or k == "note"}
                for line in lines
            },
            "clipped_counts": {
                line: float(sum(t.line_record[line]["clipped_counts"] for t in tilts)) for line in lines
            },
            "clipped_pixels": {line: int(sum(t.line_record[line]["clipped_pixels"] for t in tilts)) for line in lines},
        }

    binned_pixel = (pixel * rebin).to("nm")
    binned_dwell = (dwell * rebin**2).to("s")
    rows, columns = tilts[0].maps[lines[0]].shape
    positions, slices = (columns, rows) if tilt_axis == "vertical" else (rows, columns)
    detector: dict[str, Any] = {"probe_current": current, "dwell_time": binned_dwell}
    haadf_detector = None
    if with_haadf:
        extra = {} if haadf_angles is None else {"inner_angle": haadf_angles[0], "outer_angle": haadf_angles[1]}
        haadf_detector = HAADFDetector(**detector, **extra)
    experiment = Experiment(
        name=Path(files[0]).parent.name if len(files) > 1 else Path(files[0]).stem,
        description=f"loaded from {len(files)} file(s) by edstomo_microscope",
        beam_energy=energy,
        lines=list(lines),
        tilts=TiltScheme(angles=ureg.Quantity(angle_values, "deg")),
        scan=Scan(positions=positions, pixel_size=binned_pixel, slices=slices),
        haadf=haadf_detector,
        eds=EDSDetector(**detector, solid_angle=solid, **geometry),
    )

    def oriented(image: np.ndarray) -> np.ndarray:
        return image.T if tilt_axis == "vertical" else image

    channels = ([HAADF] if with_haadf else []) + list(lines)
    data = np.empty((len(channels), len(tilts), positions, slices), dtype=np.float32)  # float32 end to end
    for t, item in enumerate(tilts):
        for c, channel in enumerate(channels):
            data[c, t] = oriented(item.haadf if channel == HAADF else item.maps[channel])
    record = provenance.step(
        "load",
        "edstomo_microscope",
        files=[str(f) for f in files],
        sources=[t.source for t in tilts],
        angles_deg=angle_values.tolist(),
        angle_source=angle_source,
        tilt_axis=tilt_axis,
        axes="positions = image columns, slices = image rows"
        if tilt_axis == "vertical"
        else "positions = image rows, slices = image columns",
        rebin=rebin,
        crop=list(crop) if crop is not None else None,
        cutoff_at_kV=cutoff_at_kV,
        intensities=intensities,
        background=background,
        integration_width=integration_width,
        smooth=smooth,
        values=sources.to_dict(),
        eds_detectors=[head.to_dict() for head in experiment.eds.heads],
        live_time_s=[None if t.metadata.live_time is None else t.metadata.live_time.m_as("s") for t in tilts],
        real_time_s=[None if t.metadata.real_time is None else t.metadata.real_time.m_as("s") for t in tilts],
        line_counts={line: [t.line_record[line]["counts"] for t in tilts] for line in lines},
        **intensity_record,
        pixel_size=format_quantity(binned_pixel),
    )
    return TiltSeries(
        data=data,
        channels=channels,
        angles=ureg.Quantity(angle_values, "deg"),
        pixel_size=binned_pixel,
        experiment=experiment,
        provenance=[record],
    )
