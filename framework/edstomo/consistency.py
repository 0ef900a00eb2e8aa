"""Does the experiment stored with a tilt series, volume or composition maps describe that data?

A file carries its :class:`~edstomo.experiment.Experiment` next to its arrays.
When the two disagree — another tilt list, other lines, another scan or pixel
size — every later step (physics factors, doses, the projector's angles)
would silently use the wrong one. :func:`differences` lists what disagrees;
:func:`check_agrees` raises with that list. :mod:`edstomo.io` applies it when
saving and when loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .data import HAADF, CompositionMaps, TiltSeries, Volume
from .errors import InputError

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["check_agrees", "differences"]

#: Relative tolerance on pixel sizes and absolute tolerance (deg) on tilt angles.
PIXEL_RTOL = 1e-6
ANGLE_ATOL_DEG = 1e-6


def _pixel(obj: TiltSeries | Volume | CompositionMaps, experiment: Experiment) -> list[str]:
    data, stored = obj.pixel_size.m_as("nm"), experiment.scan.pixel_size.m_as("nm")
    if not np.isclose(data, stored, rtol=PIXEL_RTOL, atol=0.0):
        return [f"pixel size {data:g} nm in the data, {stored:g} nm in the experiment"]
    return []


def _grid(name: str, count: int, stored: int, what: str) -> list[str]:
    return [] if count == stored else [f"{name} {count} in the data, {stored} {what} in the experiment"]


def differences(obj: TiltSeries | Volume | CompositionMaps, experiment: Experiment | None = None) -> list[str]:
    """What disagrees between ``obj`` and ``experiment`` (default: the one it carries); [] when they agree.

    Parameters
    ----------
    obj
        A tilt series (angles, line channels, positions and
        pixel size are compared), a volume (line channels, nz = nx =
        positions, pixel size) or composition maps (nz = nx = positions, pixel
        size). The number of slices is not compared: a file may hold any
        range of slices of a scan.
    experiment
        The experiment to compare with; None uses ``obj.experiment`` (nothing to compare when absent).
    """
    experiment = obj.experiment if experiment is None else experiment
    if experiment is None:
        return []
    found: list[str] = []
    scan = experiment.scan
    if isinstance(obj, TiltSeries):
        angles, stored = obj.angles.m_as("deg"), experiment.angles.m_as("deg")
        if angles.shape != stored.shape:
            found.append(f"{angles.size} tilt angles in the data, {stored.size} in the experiment")
        elif not np.allclose(angles, stored, rtol=0.0, atol=ANGLE_ATOL_DEG):
            index = int(np.argmax(np.abs(angles - stored)))
            found.append(f"tilt {index} is {angles[index]:g} deg in the data, {stored[index]:g} deg in the experiment")
        unknown = [c for c in obj.lines if c not in experiment.lines]
        if unknown:
            found.append(f"lines {unknown} in the data are not among the experiment's lines {experiment.lines}")
        found += _grid("positions", obj.n_positions, scan.positions, "positions")
    elif isinstance(obj, Volume):
        unknown = [c for c in obj.channels if c != HAADF and c not in experiment.lines]
        if unknown:
            found.append(f"channels {unknown} in the data are not among the experiment's lines {experiment.lines}")
        _, nz, nx, _ = obj.shape
        found += _grid("nz", nz, scan.positions, "positions")
        found += _grid("nx", nx, scan.positions, "positions")
    elif isinstance(obj, CompositionMaps):
        nz, nx, _ = obj.shape
        found += _grid("nz", nz, scan.positions, "positions")
        found += _grid("nx", nx, scan.positions, "positions")
    found += _pixel(obj, experiment)
    return found


def check_agrees(obj: TiltSeries | Volume | CompositionMaps, where: str) -> None:
    """Raise :class:`~edstomo.errors.InputError` naming ``where`` when ``obj`` disagrees with its experiment."""
    found = differences(obj)
    if found:
        raise InputError(f"{where}: the stored experiment does not describe the data: {'; '.join(found)}")
