"""Background-subtracted X-ray line maps from an EDS spectrum image (exSpy does the integration).

The counts of each line are integrated by exSpy's
``EDSSpectrum.get_lines_intensity`` over a window of ``integration_width`` ×
FWHM around the line, minus the mean background of two windows beside it. This
module only *chooses* the background windows: it starts from exSpy's
``estimate_background_windows`` (each line on its own, so that windows of
neighbouring lines are not merged) and moves a window outwards, in steps of a
quarter FWHM, while it overlaps another X-ray line of an element known to be
in the sample (the elements of the requested lines, those listed in the
file's ``metadata.Sample.elements``, and any the caller adds). A window that
cannot be cleared within ``max_shift`` FWHM is dropped and the other side's
window is used twice (a one-sided background); a line with neither side clear
keeps exSpy's windows and is reported.

At low counts the background-subtracted value of a pixel is often negative.
Counts cannot be negative, and the tilt series must not hold negative values,
so negative pixels are set to zero; the number of such pixels and the counts
removed are reported per line. Clipping adds a positive bias where a line is
absent; rebinning, and a Gaussian smoothing of the background-subtracted map
*before* clipping (``smooth``, σ in pixels), keep it small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage
from edstomo.lines import element_of, parse_line

__all__ = ["LineMaps", "WindowChoice", "choose_background_windows", "extract_line_maps"]

#: Lines of interfering elements weaker than this (exSpy's relative weight) are ignored.
MIN_INTERFERING_WEIGHT = 0.05


@dataclass(frozen=True)
class WindowChoice:
    """The integration and background windows of one line (keV) and how they were chosen."""

    line: str
    energy: float
    fwhm: float
    integration: tuple[float, float]
    background: tuple[float, float, float, float]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy_kev": round(self.energy, 5),
            "fwhm_kev": round(self.fwhm, 5),
            "integration_kev": [round(v, 5) for v in self.integration],
            "background_kev": [round(v, 5) for v in self.background],
            "note": self.note,
        }


@dataclass
class LineMaps:
    """Line-intensity maps of one spectrum image.

    Attributes
    ----------
    maps : dict of str to ndarray
        Background-subtracted counts per pixel, shape (rows, columns) of the
        scan, finite and non-negative.
    windows : dict of str to WindowChoice
        The windows used for each line.
    clipped_pixels : dict of str to int
        Pixels whose background-subtracted value was negative and set to 0.
    clipped_counts : dict of str to float
        Total counts removed by that clipping (a positive number).
    """

    maps: dict[str, np.ndarray]
    windows: dict[str, WindowChoice]
    clipped_pixels: dict[str, int] = field(default_factory=dict)
    clipped_counts: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """A JSON-compatible summary for the provenance."""
        return {
            line: {
                **self.windows[line].to_dict(),
                "counts": float(self.maps[line].sum()),
                "clipped_pixels": int(self.clipped_pixels.get(line, 0)),
                "clipped_counts": float(self.clipped_counts.get(line, 0.0)),
            }
            for line in self.maps
        }


def _check_lines(lines: Sequence[str]) -> list[str]:
    if isinstance(lines, str) or not isinstance(lines, Sequence) or not lines:
        raise ValueError(f"lines: expected a non-empty list of line names such as ['Fe_Ka', 'Ni_Ka'], got {lines!r}")
    for line in lines:
        parse_line(line)
    if len(set(lines)) != len(lines):
        raise ValueError(f"lines: {list(lines)} names a line twice")
    return list(lines)


def _window(eds: Any, line: str) -> tuple[float, float]:
    """Energy and FWHM (keV) of a line at the detector's resolution (exSpy's estimate)."""
    low, high = eds.estimate_integration_windows(windows_width=1.0, xray_lines=[line])[0]
    return 0.5 * (low + high), high - low


def _interfering_lines(eds: Any, line: str, elements: Iterable[str]) -> list[tuple[float, float]]:
    """(energy, FWHM) of every other significant line of ``elements`` inside the spectrum's range."""
    import exspy

    axis = eds.axes_manager.signal_axes[0]
    low, high = float(axis.low_value), float(axis.high_value)
    found = []
    for element in sorted(set(elements)):
        if not exspy.material.elements.has_item(element):
            continue
        table = exspy.material.elements[element]["Atomic_properties"]["Xray_lines"].as_dictionary()
        for family, entry in table.items():
            name = f"{element}_{family}"
            energy = float(entry["energy (keV)"])
            if name == line or float(entry["weight"]) < MIN_INTERFERING_WEIGHT or not low < energy < high:
                continue
            found.append(_window(eds, name))
    return found


def _clear(window: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    """Whether a window stays outside ±1 FWHM of every interfering line."""
    return all(window[1] <= energy - fwhm or window[0] >= energy + fwhm for energy, fwhm in others)


def choose_background_windows(
    eds: Any,
    lines: Sequence[str],
    *,
    integration_width: float = 2.0,
    line_width: tuple[float, float] = (2.0, 2.0),
    window_width: float = 1.0,
    max_shift: float = 6.0,
    elements: Iterable[str] = (),
    given: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, WindowChoice]:
    """Choose integration and background windows for each line.

    Parameters
    ----------
    eds : exspy EDS signal
        The spectrum image (its energy axis and detector resolution are used).
    lines : list of str
        Lines to map, e.g. ``["Fe_Ka", "Ni_Ka"]``.
    integration_width : float
        Integration window width in FWHM of the line (exSpy's ``integration_windows``).
    line_width : (float, float)
        Distance (FWHM) from the line to the inner edge of the left and right windows.
    window_width : float
        Width of each background window (FWHM).
    max_shift : float
        How far (FWHM) a window may be moved outwards to clear an interfering line.
    elements : iterable of str
        Elements besides those of ``lines`` and of ``metadata.Sample.elements``
        whose lines the windows must avoid.
    given : dict, optional
        Background windows chosen by hand, ``{line: (left_start, left_end,
        right_start, right_end)}`` in keV; they are used as they are.

    Returns
    -------
    dict of str to WindowChoice
    """
    lines = _check_lines(lines)
    for name, value in {"integration_width": integration_width, "window_width": window_width}.items():
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {value!r} must be a positive number of FWHM")
    given = dict(given or {})
    unknown = set(given) - set(lines)
    if unknown:
        raise ValueError(f"background_windows: given for {sorted(unknown)}, which are not among the lines {lines}")
    sample = eds.metadata.get_item("Sample.elements") if eds.metadata.has_item("Sample.elements") else []
    known = {element_of(line) for line in lines} | set(sample) | set(elements)
    step = 0.25
    choices: dict[str, WindowChoice] = {}
    for line in lines:
        energy, fwhm = _window(eds, line)
        integration = (energy - 0.5 * integration_width * fwhm, energy + 0.5 * integration_width * fwhm)
        if line in given:
            window = tuple(float(v) for v in given[line])
            if len(window) != 4 or not (window[0] < window[1] and window[2] < window[3]):
                raise ValueError(
                    f"background_windows[{line!r}]: {given[line]!r} must be four increasing energies "
                    "(left start, left end, right start, right end) in keV"
                )
            choices[line] = WindowChoice(line, energy, fwhm, integration, window, "given")  # type: ignore[arg-type]
            continue
        others = _interfering_lines(eds, line, known)
        left_inner, right_inner = energy - line_width[0] * fwhm, energy + line_width[1] * fwhm
        width = window_width * fwhm
        left = right = None
        for k in np.arange(0.0, max_shift + 1e-9, step):
            candidate = (left_inner - width - k * fwhm, left_inner - k * fwhm)
            if candidate[0] > 0 and _clear(candidate, others):
                left = candidate
                break
        for k in np.arange(0.0, max_shift + 1e-9, step):
            candidate = (right_inner + k * fwhm, right_inner + width + k * fwhm)
            if _clear(candidate, others):
                right = candidate
                break
        note = ""
        if left is None and right is None:
            left = (left_inner - width, left_inner)
            right = (right_inner, right_inner + width)
            note = "no background window clear of interfering lines; exSpy's default windows used"
        elif left is None:
            left, note = right, "left window blocked by interfering lines; right window used on its own"
        elif right is None:
            right, note = left, "right window blocked by interfering lines; left window used on its own"
        choices[line] = WindowChoice(line, energy, fwhm, integration, (*left, *right), note)  # type: ignore[arg-type]
    return choices


def extract_line_maps(
    eds: Any,
    lines: Sequence[str],
    *,
    background: bool = True,
    integration_width: float = 2.0,
    background_windows: Mapping[str, Sequence[float]] | None = None,
    elements: Iterable[str] = (),
    smooth: float = 0.0,
) -> LineMaps:
    """Background-subtracted line-intensity maps through exSpy's ``get_lines_intensity``.

    Parameters
    ----------
    eds : exspy EDS signal
        A spectrum image (two navigation axes, one energy axis in keV or eV).
    lines : list of str
        Lines to map.
    background : bool
        Subtract the background measured in windows beside each line.
    integration_width : float
        Integration window width in FWHM.
    background_windows : dict, optional
        Hand-chosen background windows per line (keV), see :func:`choose_background_windows`.
    elements : iterable of str
        Extra elements whose lines the background windows must avoid.
    smooth : float
        σ (pixels) of a Gaussian applied to each background-subtracted map
        before negative values are clipped; 0 for none.

    Returns
    -------
    LineMaps
        Maps of shape (rows, columns), non-negative and finite.
    """
    lines = _check_lines(lines)
    if not (isinstance(smooth, (int, float)) and np.isfinite(smooth) and smooth >= 0):
        raise ValueError(f"smooth: {smooth!r} must be a non-negative number of pixels")
    if eds.axes_manager.navigation_dimension != 2:
        raise ValueError(
            f"eds: expected a spectrum image with 2 navigation axes, got {eds.axes_manager.navigation_dimension}"
        )
    choices = choose_background_windows(
        eds, lines, integration_width=integration_width, elements=elements, given=background_windows
    )
    integration = [list(choices[line].integration) for line in lines]
    windows = np.array([choices[line].background for line in lines]) if background else None
    signals = eds.get_lines_intensity(xray_lines=lines, integration_windows=integration, background_windows=windows)
    maps: dict[str, np.ndarray] = {}
    clipped_pixels: dict[str, int] = {}
    clipped_counts: dict[str, float] = {}
    for line, signal in zip(lines, signals):
        data = np.nan_to_num(np.asarray(signal.data, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if smooth > 0:
            data = scipy.ndimage.gaussian_filter(data, smooth, mode="nearest")
        negative = data < 0
        clipped_pixels[line] = int(negative.sum())
        clipped_counts[line] = float(-data[negative].sum())
        maps[line] = np.where(negative, 0.0, data)
    return LineMaps(maps, choices, clipped_pixels, clipped_counts)
