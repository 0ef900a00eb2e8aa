"""Provenance records: which step made a result, with which parameters and package versions."""

from __future__ import annotations

import datetime as _dt
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
