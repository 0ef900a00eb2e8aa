"""Array libraries: NumPy on the CPU, CuPy on a GPU, behind the array API.

The projector and the solvers do their element-wise work through the array
namespace of their inputs (``array_api_compat.array_namespace``), so the same
code runs on NumPy arrays and, when CuPy and a CUDA GPU are present, on CuPy
arrays; the sparse products then use ``cupyx.scipy.sparse``.  This module holds
the few helpers that have to know which library is which.

Devices are named ``"cpu"`` (NumPy) and ``"gpu"`` (CuPy).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

__all__ = [
    "DEVICES",
    "contiguous",
    "device_csr",
    "gpu_available",
    "is_gpu_array",
    "namespace",
    "namespace_for",
    "to_numpy",
]

DEVICES: tuple[str, ...] = ("cpu", "gpu")
"""Device names accepted by :func:`namespace_for`."""


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # ImportError, or CUDA missing / no driver / no device
        return False


def namespace_for(device: str) -> ModuleType:
    """The array namespace of a device: NumPy for ``"cpu"``, CuPy for ``"gpu"``.

    Parameters
    ----------
    device : {"cpu", "gpu"}
        Where arrays live.

    Raises
    ------
    ValueError
        For an unknown device, or ``"gpu"`` without CuPy and a CUDA device.
    """
    if device == "cpu":
        return array_namespace(np.empty(0))
    if device == "gpu":
        if not gpu_available():
            raise ValueError("device: 'gpu' needs CuPy and a CUDA GPU (pip install cupy-cuda12x); none was found")
        return array_namespace(importlib.import_module("cupy").empty(0))
    raise ValueError(f"device: {device!r} is not a device; expected one of {list(DEVICES)}")


def namespace(*arrays: Any) -> ModuleType:
    """The array-API namespace shared by ``arrays`` (NumPy for plain lists and scalars)."""
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float, list, tuple)))
    return array_namespace(*arrays) if arrays else array_namespace(np.empty(0))


def is_gpu_array(array: Any) -> bool:
    """Whether ``array`` is a CuPy array (lives on a GPU)."""
    return bool(is_cupy_array(array))


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copied from the GPU for CuPy arrays)."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def contiguous(array: Any, dtype: Any) -> Any:
    """``array`` as a C-contiguous array of ``dtype``: CuPy arrays stay on their GPU, anything else becomes NumPy."""
    if is_cupy_array(array):
        cupy = importlib.import_module("cupy")
        return cupy.ascontiguousarray(array, dtype=dtype)
    return np.ascontiguousarray(array, dtype=dtype)


def device_csr(matrix: Any) -> Any:
    """A copy of a SciPy CSR matrix on the GPU (``cupyx.scipy.sparse.csr_matrix``)."""
    sparse = importlib.import_module("cupyx.scipy.sparse")
    return sparse.csr_matrix(matrix)
