"""Provenance records: which step made a result, with which parameters and package versions."""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from importlib import metadata
from typing import Any

_PACKAGES = ("edstomo", "numpy", "scipy", "pint", "pydantic", "h5py", "xraylib", "pyxray")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages edstomo relies on (``"absent"`` if not installed)."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def step(action: str, plugin: str | None = None, **parameters: Any) -> dict[str, Any]:
    """One provenance step: what was done, by which plugin, with which parameters (JSON-compatible)."""
    record: dict[str, Any] = {
        "action": action,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if plugin is not None:
        record["plugin"] = plugin
    if parameters:
        record["parameters"] = {key: jsonable(value) for key, value in parameters.items()}
    return record


def canonical(steps: Any) -> str:
    """Provenance (or any JSON-compatible value) as one string that is equal exactly when the contents are
    (keys sorted): for comparing a record made in memory with one read back from a file."""
    return json.dumps(jsonable(steps), sort_keys=True)


def jsonable(value: Any) -> Any:
    """Turn numbers, arrays, quantities and nested containers into JSON-compatible values."""
    import numpy as np
    import pint

    if isinstance(value, pint.Quantity):
        from .units import to_jsonable

        return to_jsonable(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return repr(value)


def strict(value: Any) -> tuple[Any, list[str]]:
    """``jsonable(value)`` with NaN and infinities replaced by None, and the paths where they were.

    JSON has no NaN: Python's ``json`` writes a bare ``NaN`` that other readers
    reject. Paths are dotted keys and list indices, e.g.
    ``"comparison_eds_vs_hebt.S.pearson"``.
    """
    undefined: list[str] = []

    def clean(item: Any, where: str) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            undefined.append(where or "(the value)")
            return None
        if isinstance(item, dict):
            return {k: clean(v, f"{where}.{k}" if where else str(k)) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(item)]
        return item

    return clean(jsonable(value), ""), undefined


def strict_json(value: Any, *, note_key: str | None = None, indent: int | None = 2) -> str:
    """Strict JSON text of ``value``: NaN and infinities written as null.

    With ``note_key`` (``value`` a dict), a note naming the undefined entries
    is appended to the list at that key (created if absent), so a reader
    learns why they are null.
    """
    cleaned, undefined = strict(value)
    if undefined and note_key is not None and isinstance(cleaned, dict):
        shown = ", ".join(undefined[:8]) + (f" and {len(undefined) - 8} more" if len(undefined) > 8 else "")
        notes = list(cleaned.get(note_key) or [])
        notes.append(f"undefined values (NaN: no voxel, or a constant map) are written as null: {shown}")
        cleaned[note_key] = notes
    return json.dumps(cleaned, indent=indent, ensure_ascii=False, allow_nan=False)
