"""Helpers for validation studies: a results table, CSV and JSON files, masks, progress.

A study (see :class:`edstomo.interfaces.Study`) sweeps reconstruction
parameters, records metrics in a :class:`ResultsTable` (one row per map and
setting), writes the table as CSV and a summary as JSON — both atomically —
and reports progress as ``progress(stage, done, total)``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from scipy import ndimage

from .io import atomic_write_text
from .provenance import strict_json

__all__ = [
    "ProgressPrinter",
    "ResultsTable",
    "dice",
    "interior",
    "write_json",
]

#: ``progress(stage, done, total)``: a study's progress report.
ProgressCallback = Callable[[str, int, int], None]


class ResultsTable:
    """Rows of results with fixed columns, e.g. one per (setting, element, metric set).

    Parameters
    ----------
    columns
        Column names, in CSV order. A row may leave columns out (written empty).

    Examples
    --------
    >>> table = ResultsTable(["n", "element", "score"])
    >>> table.add(n=1, element="Ag", score=0.5)
    >>> table.add(n=2, element="Ag", score=0.7)
    >>> table.best("score", element="Ag")["n"]
    2
    """

    def __init__(self, columns: Sequence[str]):
        columns = [str(c) for c in columns]
        if not columns or len(set(columns)) != len(columns):
            raise ValueError(f"columns: {columns} must be a non-empty list of unique names")
        self.columns = columns
        self._rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, **values: Any) -> None:
        """Append one row; every key must be a column."""
        unknown = [key for key in values if key not in self.columns]
        if unknown:
            raise ValueError(f"row: unknown columns {unknown}; the table has {self.columns}")
        self._rows.append({column: values.get(column) for column in self.columns})

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append several rows."""
        for row in rows:
            self.add(**row)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """All rows (copies), in insertion order."""
        return [dict(row) for row in self._rows]

    def where(self, **criteria: Any) -> list[dict[str, Any]]:
        """The rows whose columns equal the given values (floats compared with a 1e-9 tolerance)."""
        self._check_columns(criteria)
        return [dict(row) for row in self._rows if all(_equal(row[k], v) for k, v in criteria.items())]

    def column(self, name: str, **criteria: Any) -> np.ndarray:
        """The values of one column (as floats; None becomes NaN) over the rows matching ``criteria``."""
        self._check_columns({name: None})
        return np.array([np.nan if row[name] is None else float(row[name]) for row in self.where(**criteria)])

    def best(self, name: str, *, maximise: bool = True, **criteria: Any) -> dict[str, Any]:
        """The matching row with the largest (or smallest) finite value of ``name``; the first one on ties."""
        rows = self.where(**criteria)
        values = np.array([np.nan if row[name] is None else float(row[name]) for row in rows])
        finite = np.isfinite(values)
        if not finite.any():
            raise ValueError(f"{name}: no finite value among the {len(rows)} rows matching {criteria}")
        scores = np.where(finite, values if maximise else -values, -np.inf)
        return rows[int(np.argmax(scores))]

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV (UTF-8, header row; None empty, floats with 10 significant digits), atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self._rows:
            writer.writerow([_cell(row[c]) for c in self.columns])
        path = Path(path)
        atomic_write_text(path, buffer.getvalue())
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> ResultsTable:
        """Read a table written by :meth:`to_csv` (numbers parsed back, empty cells as None)."""
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.reader(stream)
            table = cls(next(reader))
            for cells in reader:
                table.add(**{c: _parse(v) for c, v in zip(table.columns, cells)})
        return table

    def _check_columns(self, criteria: dict[str, Any]) -> None:
        unknown = [key for key in criteria if key not in self.columns]
        if unknown:
            raise ValueError(f"columns: {unknown} are not in the table; it has {self.columns}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.10g}"
    return str(value)


def _parse(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically; NaN and infinities become null (JSON has none)."""
    path = Path(path)
    atomic_write_text(path, strict_json(data) + "\n")
    return path


def dice(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient ``2|A ∩ B| / (|A| + |B|)`` of two boolean masks of one shape (1 when both are empty)."""
    a, b = np.asarray(estimate, dtype=bool), np.asarray(reference, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"estimate: mask shape {a.shape} does not match the reference's {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.sum(a & b)) / total


def interior(region: np.ndarray, distance: float) -> np.ndarray:
    """The voxels of ``region`` farther than ``distance`` (pixels, Euclidean) from any voxel outside it.

    Used to average a map over a region away from its interfaces (its boundary
    with every other region and with the background). Voxels beyond the array's
    edge do not count as outside.
    """
    if not (np.isfinite(distance) and distance >= 0):
        raise ValueError(f"distance: {distance!r} must be a number of pixels >= 0")
    region = np.asarray(region, dtype=bool)
    return ndimage.distance_transform_edt(region) > distance


class ProgressPrinter:
    """A ``progress(stage, done, total)`` callback that prints one line per stage to a stream.

    On a terminal the line is rewritten as the stage advances; elsewhere only the
    finished stage is printed, so logs stay short.
    """

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self._live = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, stage: str, done: int, total: int) -> None:
        line = f"{stage}: {done}/{total}"
        if self._live:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
            self.stream.flush()
        elif done >= total:
            self.stream.write(line + "\n")
            self.stream.flush()
