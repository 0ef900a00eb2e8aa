"""Files, written atomically, and edstomo's HDF5 format (the containers write themselves: :mod:`edstomo.data`).

Layout (format version 1; every file)::

    /                      attrs: format = "edstomo", format_version = 1,
                                  object = "TiltSeries" | "Volume" | "CompositionMaps"
    /experiment            UTF-8 JSON of the Experiment (absent when unknown)
    /provenance            UTF-8 JSON: {"steps": [...], "versions": {...}}

TiltSeries::

    /data      float (channels, tilts, positions, slices)
    /channels  strings
    /angles    float (tilts,), attr units = "deg"
    /          attr pixel_size = "1.5 nm"

Volume::

    /data      float (channels, nz, nx, slices)
    /channels  strings
    /          attrs pixel_size, quantity, unit

CompositionMaps::

    /weight_fractions  float (elements, nz, nx, slices)
    /elements          strings
    /density           float (nz, nx, slices), g/cm³ (optional)
    /mask              bool (nz, nx, slices) (optional)
    /                  attrs pixel_size, threshold (optional)

Writes go to a temporary file in the destination folder, are flushed to disk,
and are then renamed over the destination, so an interrupted write never leaves
a partial file where the result should be; where edstomo may write, and how
temporaries are named and cleaned up, is :mod:`edstomo.outputs`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from . import outputs
from .errors import EdstomoError, InputError

FORMAT = "edstomo"
FORMAT_VERSION = 1
#: HDF5 type of the UTF-8 strings edstomo writes.
STRING = h5py.string_dtype("utf-8")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's file-creation mask, read once at import (reading it means setting it).
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The rules of :mod:`edstomo.outputs` apply: ``path`` must not be a folder, a
    special file, a symbolic link or an input protected by the running command;
    stale temporaries of ``path`` left by a killed process are removed first;
    the temporary is named ``.<name>.edstomo-<host>-<pid>-<token>.tmp``. On any
    exception (including Ctrl-C) the temporary file is removed and ``path`` is
    left as it was; after an interrupt that something swallowed, the rename is
    not done either.
    """
    path = Path(path)
    outputs.check_target(path)
    outputs.remove_stale(path)
    temporary_path = outputs.temporary_file(path)
    try:
        yield temporary_path
        with open(temporary_path, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary_path, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; use the usual mode
        outputs.raise_if_interrupted()
        outputs.check_target(path)
        os.replace(temporary_path, path)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_save_figure(figure: Any, path: str | Path, **options: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, e.g. ``.png``); other options go to ``savefig``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix.lstrip(".").lower() or "png", **options)
    return path


def open_file(path: str | Path, expected: str | None = None) -> h5py.File:
    """Open an edstomo HDF5 file for reading, after checking that it is one.

    Parameters
    ----------
    path
        The file.
    expected
        ``"TiltSeries"``, ``"Volume"`` or ``"CompositionMaps"`` to require that
        object, or None for any.

    Raises
    ------
    FileNotFoundError
        The file does not exist (naming it).
    InputError
        Naming the file: not a regular file, not HDF5, not an edstomo
        file, a newer format version, or another object than ``expected``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    if not path.is_file():
        raise InputError(f"path: {str(path)!r} is not a regular file; expected an edstomo HDF5 file")
    try:
        file = h5py.File(path, "r")
    except Exception as error:  # h5py raises OSError, and others for damaged files
        raise InputError(f"path: {str(path)!r} is not a readable HDF5 file ({_reason(error)})") from None
    try:
        problem = None
        if file.attrs.get("format") != FORMAT:
            problem = "is not an edstomo file (no format='edstomo' attribute)"
        elif int(file.attrs["format_version"]) > FORMAT_VERSION:
            version = int(file.attrs["format_version"])
            problem = f"has format version {version}; this edstomo reads up to {FORMAT_VERSION}"
        elif expected is not None and file.attrs.get("object") != expected:
            problem = f"holds a {file.attrs.get('object')}, not a {expected}"
    except Exception as error:  # damaged attributes
        problem = f"cannot be read ({_reason(error)})"
    if problem is not None:
        file.close()
        raise InputError(f"path: {str(path)!r} {problem}")
    return file


def _reason(error: BaseException) -> str:
    """A short reason for a reader's exception: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn any error while reading the content of an edstomo file into an :class:`InputError` naming it."""
    try:
        yield
    except EdstomoError as error:
        if str(path) in str(error):
            raise
        raise InputError(f"path: {str(path)!r}: {error}") from None
    except (Exception, RecursionError) as error:  # damaged content: missing datasets, bad JSON, wrong types
        raise InputError(f"path: {str(path)!r} cannot be read as an edstomo file ({_reason(error)})") from None


def text_of(dataset: h5py.Dataset | Any) -> str:
    """A UTF-8 string stored in HDF5 (a dataset or attribute value), as ``str``."""
    value = dataset[()] if isinstance(dataset, h5py.Dataset) else dataset
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def strings_of(dataset: h5py.Dataset) -> list[str]:
    """A list of UTF-8 strings stored in HDF5."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in dataset[()]]


def read_channels(path: str | Path) -> list[str]:
    """The channel names of the tilt series or volume in an edstomo file (no data read)."""
    with open_file(path) as file, reading(path):
        return strings_of(file["channels"])


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance record (steps and package versions) stored in a file."""
    with h5py.File(path, "r") as file:
        return json.loads(text_of(file["provenance"]))
