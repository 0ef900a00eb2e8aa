"""Tests for edstomo.backend (NumPy / CuPy) and the GPU paths of the projector and the solvers.

The GPU tests run only where CuPy sees a CUDA device; elsewhere they are skipped.
"""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
from edstomo import backend
from edstomo.data import TiltSeries
from edstomo.operators import ParallelBeamProjector

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")


@pytest.fixture(scope="module")
def series() -> TiltSeries:
    angles = np.arange(-60.0, 61.0, 15.0)
    proj = ParallelBeamProjector(np.deg2rad(angles), (16, 16), dtype="float64")
    z, x = np.meshgrid(np.arange(16) - 7.5, np.arange(16) - 7.5, indexing="ij")
    disk = (x**2 + z**2 <= 36.0)[..., None] * np.ones(3)
    eds = np.stack([proj.forward(0.7 * disk) * 40, proj.forward(0.3 * disk) * 40])
    data = np.concatenate([(500 * eds[0] + 900 * eds[1])[None], eds])
    return TiltSeries(data, ["HAADF", "Ag_La", "Au_Ma"], et.ureg.Quantity(angles, "deg"), et.ureg.Quantity(1, "nm"))


# ------------------------------------------------------------------- CPU side
def test_cpu_namespace_is_numpy():
    xp = backend.namespace_for("cpu")
    array = xp.asarray([1.0, 2.0])
    assert isinstance(array, np.ndarray)
    assert backend.namespace(array) is xp
    assert backend.namespace(None, 3, [1, 2]) is xp  # scalars and lists fall back to NumPy


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match=r"device: 'tpu' is not a device; expected one of \['cpu', 'gpu'\]"):
        backend.namespace_for("tpu")


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present")
def test_gpu_without_cupy_or_device_is_a_clear_error(series):
    with pytest.raises(ValueError, match="device: 'gpu' needs CuPy and a CUDA GPU"):
        backend.namespace_for("gpu")
    with pytest.raises(ValueError, match="device: solver 'sirt' asked for 'gpu', but CuPy with a CUDA GPU"):
        et.plugins.solver("sirt")(iterations=1, device="gpu").solve(series)


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present")
def test_auto_device_falls_back_to_the_cpu(series):
    auto = et.plugins.solver("sirt")(iterations=3, device="auto").solve(series)
    cpu = et.plugins.solver("sirt")(iterations=3).solve(series)
    np.testing.assert_array_equal(auto.data, cpu.data)
    assert auto.provenance[-1]["parameters"]["device_used"] == "cpu"


def test_contiguous_casts_and_orders():
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    result = backend.contiguous(fortran, np.float32)
    assert result.flags.c_contiguous and result.dtype == np.float32
    np.testing.assert_array_equal(result, fortran)
    assert backend.contiguous([[1, 2]], "float64").dtype == np.float64


def test_to_numpy_and_is_gpu_array_on_numpy():
    array = np.arange(5)
    assert backend.to_numpy(array) is array
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])
    assert not backend.is_gpu_array(array)


def test_solver_device_option_is_checked():
    with pytest.raises(ValueError, match=r"option 'device' = 'cuda': expected 'cpu' \| 'gpu' \| 'auto'"):
        et.plugins.solver("sirt")(device="cuda")
    with pytest.raises(ValueError, match="'device' = 'cuda'"):
        et.plugins.solver("hebt-sirt")(device="cuda")


def test_update_rejects_mixed_devices_and_non_arrays():
    proj = ParallelBeamProjector([0.0, 0.5], (4, 4))
    with pytest.raises(ValueError, match="volume must be a C-contiguous float32 array"):
        proj.update(np.zeros((4, 4, 2), dtype=np.float32).tolist(), np.zeros((2, 4, 2)), np.ones(16))


# ------------------------------------------------------------------- GPU side
@needs_gpu
@pytest.mark.parametrize("model", ["strip", "joseph"])
def test_projector_on_cupy_equals_numpy(model):
    import cupy

    proj = ParallelBeamProjector(np.deg2rad([-50.0, 0.0, 35.0, 80.0]), (18, 21), n_det=25, model=model)
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((18, 21, 3)).astype(np.float32)
    sino = rng.standard_normal((4, 25, 3)).astype(np.float32)
    forward = proj.forward(cupy.asarray(vol))
    adjoint = proj.adjoint(cupy.asarray(sino))
    assert backend.is_gpu_array(forward) and backend.is_gpu_array(adjoint)
    np.testing.assert_allclose(backend.to_numpy(forward), proj.forward(vol), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(adjoint), proj.adjoint(sino), rtol=1e-5, atol=1e-5)
    x_gpu, x_cpu = cupy.asarray(vol), vol.copy()
    p_gpu = proj.update(x_gpu, cupy.asarray(sino), cupy.full((18, 21), 0.05, dtype=cupy.float32))
    p_cpu = proj.update(x_cpu, sino, np.full((18, 21), 0.05, dtype=np.float32))
    np.testing.assert_allclose(backend.to_numpy(x_gpu), x_cpu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(p_gpu), p_cpu, rtol=1e-5, atol=1e-4)


@needs_gpu
@pytest.mark.parametrize(("solver", "options"), [("sirt", {}), ("hebt-sirt", {"ratios": {"Ag_La": 500, "Au_Ma": 900}})])
def test_solvers_on_the_gpu_match_the_cpu(series, solver, options):
    cls = et.plugins.solver(solver)
    cpu = cls(iterations=30, **options).solve(series)
    gpu = cls(iterations=30, device="gpu", **options).solve(series)
    assert isinstance(gpu.data, np.ndarray)
    np.testing.assert_allclose(gpu.data, cpu.data, rtol=1e-4, atol=1e-4 * float(np.abs(cpu.data).max()))
    assert gpu.provenance[-1]["parameters"]["device"] == "gpu"
