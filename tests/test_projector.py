"""Tests for edstomo.operators.projector: adjointness, geometry conventions, accuracy, errors."""

from __future__ import annotations

import numpy as np
import pytest
from edstomo.operators import MODELS, ParallelBeamProjector
from hypothesis import given, settings
from hypothesis import strategies as st

ANGLE_SETS = {
    "zero": [0.0],
    "axes": [0.0, 90.0, 180.0, -90.0],
    "diagonals": [45.0, -45.0, 135.0],
    "tilt-series": list(np.arange(-75.0, 76.0, 5.0)),
    "irregular": [-71.3, -12.0, 3.7, 88.9, 91.2],
}


def _dot_test(proj: ParallelBeamProjector, batch: tuple[int, ...], rng: np.random.Generator) -> float:
    x = rng.standard_normal(proj.domain_shape + batch)
    y = rng.standard_normal(proj.range_shape + batch)
    lhs = np.vdot(proj.forward(x), y)
    rhs = np.vdot(x, proj.adjoint(y))
    scale = max(abs(lhs), abs(rhs))
    return 0.0 if scale == 0 else abs(lhs - rhs) / scale  # both exactly 0 when no ray meets the grid


def _disk(n: int, radius: float, supersample: int = 8) -> np.ndarray:
    """Unit-valued disk of ``radius`` pixels centred on the grid, area-rasterised."""
    sub = (np.arange(n * supersample) + 0.5) / supersample - n / 2
    x, z = np.meshgrid(sub, sub)
    inside = (x**2 + z**2 <= radius**2).astype(np.float64)
    return inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))


# ---------------------------------------------------------------- adjointness
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("angle_set", sorted(ANGLE_SETS))
@pytest.mark.parametrize(
    ("shape", "n_det", "spacing"), [((16, 16), None, 1.0), ((11, 20), 27, 0.7), ((20, 9), 13, 1.6)]
)
def test_dot_test(model, angle_set, shape, n_det, spacing):
    angles = np.deg2rad(ANGLE_SETS[angle_set])
    proj = ParallelBeamProjector(angles, shape, n_det=n_det, det_spacing=spacing, model=model, dtype="float64")
    assert _dot_test(proj, (3,), np.random.default_rng(0)) < 1e-10


@settings(max_examples=25, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    nz=st.integers(1, 24),
    nx=st.integers(1, 24),
    n_det=st.integers(1, 30),
    spacing=st.floats(0.3, 2.5),
    angles=st.lists(st.floats(-2 * np.pi, 2 * np.pi), min_size=1, max_size=6),
    batch=st.sampled_from([(), (1,), (2, 3)]),
    seed=st.integers(0, 2**16),
)
def test_dot_test_random(model, nz, nx, n_det, spacing, angles, batch, seed):
    proj = ParallelBeamProjector(angles, (nz, nx), n_det=n_det, det_spacing=spacing, model=model, dtype="float64")
    assert _dot_test(proj, batch, np.random.default_rng(seed)) < 1e-10


def test_transpose_is_cached_csr_of_matrix():
    proj = ParallelBeamProjector(np.deg2rad([-30.0, 10.0, 60.0]), (8, 10), n_det=12, dtype="float64")
    assert proj.matrix_t.format == "csr"
    np.testing.assert_array_equal(proj.matrix_t.toarray(), proj.matrix.toarray().T)
    x = np.random.default_rng(1).standard_normal((8, 10))
    y = np.random.default_rng(2).standard_normal((3, 12))
    np.testing.assert_array_equal(proj @ x, proj.forward(x))
    np.testing.assert_array_equal(proj.T @ y, proj.adjoint(y))
    np.testing.assert_array_equal(proj.H @ y, proj.adjoint(y))
    assert proj.T.T is proj
    assert proj.T.domain_shape == (3, 12) and proj.T.range_shape == (8, 10)


# ------------------------------------------------------------------ geometry
def test_strip_zero_degrees_is_column_sums_exactly():
    vol = np.random.default_rng(3).integers(0, 100, size=(13, 17)).astype(np.float64)
    proj = ParallelBeamProjector([0.0], vol.shape, dtype="float64")
    np.testing.assert_array_equal(proj.forward(vol)[0], vol.sum(axis=0))


def test_strip_ninety_degrees_is_row_sums_with_z_increasing_along_detector():
    vol = np.random.default_rng(4).integers(0, 100, size=(13, 17)).astype(np.float64)
    proj = ParallelBeamProjector(np.deg2rad([90.0, -90.0, 180.0]), vol.shape, n_det=13, dtype="float64")
    sino = proj.forward(vol)
    np.testing.assert_array_equal(sino[0], vol.sum(axis=1))  # s = z at +90°
    np.testing.assert_array_equal(sino[1], vol.sum(axis=1)[::-1])  # s = -z at -90°
    np.testing.assert_array_equal(sino[2], vol.sum(axis=0)[::-1][2:15])  # s = -x at 180°, 13 central bins


def test_positive_angle_sense_of_rotation():
    """A point below the centre (z > 0) moves to s = z sin θ > 0 for θ > 0."""
    vol = np.zeros((21, 21))
    vol[15, 10] = 1.0  # x = 0, z = 5
    proj = ParallelBeamProjector(np.deg2rad([30.0, -30.0]), vol.shape, dtype="float64")
    sino = proj.forward(vol)
    s = np.arange(21) - 10.0
    np.testing.assert_allclose(sino @ s / sino.sum(axis=1), [2.5, -2.5], atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_both_models_sum_columns_at_0_and_rows_at_90_degrees(model):
    vol = np.random.default_rng(5).integers(0, 50, size=(9, 12)).astype(np.float64)
    at_0 = ParallelBeamProjector([0.0], vol.shape, model=model, dtype="float64")
    at_90 = ParallelBeamProjector([np.pi / 2], vol.shape, n_det=9, model=model, dtype="float64")
    np.testing.assert_array_equal(at_0.forward(vol)[0], vol.sum(axis=0))
    np.testing.assert_array_equal(at_90.forward(vol)[0], vol.sum(axis=1))


def test_strip_pixel_footprint_matches_supersampled_area():
    """One pixel's strip weights equal its area inside each strip / bin width (closed form vs sampling)."""
    n_sub, theta, spacing = 600, np.deg2rad(27.0), 0.6
    proj = ParallelBeamProjector([theta], (5, 5), n_det=11, det_spacing=spacing, dtype="float64")
    column = proj.matrix.toarray()[:, 1 * 5 + 3]  # pixel (i=1, j=3): x = 1, z = -1
    u = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    x, z = np.meshgrid(1.0 + u, -1.0 + u)
    s = x * np.cos(theta) + z * np.sin(theta)
    k = np.floor(s / spacing + 11 / 2).astype(int)
    area = np.bincount(k.ravel(), minlength=11) / n_sub**2
    np.testing.assert_allclose(column * spacing, area, atol=3e-3)
    np.testing.assert_allclose(column.sum() * spacing, 1.0, rtol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_disk_projects_to_chord_length(model):
    n, radius = 128, 30.0
    angles = np.deg2rad([-75.0, -33.0, 0.0, 17.0, 45.0, 90.0, 133.0])
    proj = ParallelBeamProjector(angles, (n, n), model=model, dtype="float64")
    sino = proj.forward(_disk(n, radius))
    s = np.arange(n) - (n - 1) / 2
    chord = 2 * np.sqrt(np.clip(radius**2 - s**2, 0.0, None))
    rms = np.sqrt(np.mean((sino - chord) ** 2, axis=1)) / chord.max()
    assert np.all(rms < 0.01), rms


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spacing", [1.0, 0.55, 1.7])
def test_strip_conserves_mass_per_angle(dtype, spacing):
    """Σ_k p_k · d equals the volume's total at every angle (object inside the field of view)."""
    rng = np.random.default_rng(6)
    vol = _disk(48, 20.0) * rng.uniform(0.5, 1.5, size=(48, 48))
    angles = np.deg2rad(np.r_[np.arange(-75.0, 76.0, 5.0), 90.0, 180.0, -133.3])
    proj = ParallelBeamProjector(
        angles, vol.shape, n_det=int(np.ceil(48 * 1.5 / spacing)), det_spacing=spacing, dtype=dtype
    )
    totals = proj.forward(vol).sum(axis=1, dtype=np.float64) * spacing
    np.testing.assert_allclose(totals, vol.sum(), rtol=1e-5)


def test_joseph_conserves_mass_per_angle_approximately():
    """Joseph sums sampled interpolants: conserved to 2e-3 relative for a smooth object."""
    vol = _disk(64, 25.0)
    angles = np.deg2rad(np.r_[np.arange(-75.0, 76.0, 5.0), 90.0])
    proj = ParallelBeamProjector(angles, vol.shape, model="joseph", dtype="float64")
    np.testing.assert_allclose(proj.forward(vol).sum(axis=1), vol.sum(), rtol=2e-3)


# --------------------------------------------------------------------- batch
@pytest.mark.parametrize("model", MODELS)
def test_batch_equals_slice_by_slice(model):
    rng = np.random.default_rng(7)
    vol = rng.standard_normal((10, 14, 4, 3)).astype(np.float32)
    proj = ParallelBeamProjector(np.deg2rad([-60.0, 5.0, 45.0]), (10, 14), n_det=17, model=model)
    sino = proj.forward(vol)
    back = proj.adjoint(sino)
    assert sino.shape == (3, 17, 4, 3) and back.shape == (10, 14, 4, 3)
    assert sino.dtype == np.float32 and back.dtype == np.float32
    for s in range(4):
        for c in range(3):
            np.testing.assert_allclose(sino[..., s, c], proj.forward(vol[..., s, c]), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(back[..., s, c], proj.adjoint(sino[..., s, c]), rtol=1e-5, atol=1e-5)


def test_input_is_cast_to_projector_dtype():
    vol = np.ones((6, 6), dtype=np.float64)
    assert ParallelBeamProjector([0.3], (6, 6)).forward(vol).dtype == np.float32
    assert ParallelBeamProjector([0.3], (6, 6), dtype="float64").forward(vol.astype(np.float32)).dtype == np.float64
    assert ParallelBeamProjector([0.3], (6, 6)).matrix.dtype == np.float32


def test_row_and_col_sums():
    proj = ParallelBeamProjector(np.deg2rad([-40.0, 0.0, 70.0]), (7, 9), n_det=11, model="joseph", dtype="float64")
    dense = proj.matrix.toarray()
    np.testing.assert_allclose(proj.row_sums().ravel(), dense.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(proj.col_sums().ravel(), dense.sum(axis=0), rtol=1e-12)
    assert proj.row_sums().shape == (3, 11) and proj.col_sums().shape == (7, 9)


def test_pint_angles_are_converted_to_radians():
    pint = pytest.importorskip("pint")
    ureg = pint.UnitRegistry()
    proj = ParallelBeamProjector(ureg.Quantity([0.0, 90.0], "degree"), (4, 4))
    np.testing.assert_allclose(proj.angles, [0.0, np.pi / 2])


# --------------------------------------------------------------------- ASTRA
def _astra_matrix(kind: str, angles: np.ndarray, shape: tuple[int, int], n_det: int, spacing: float) -> np.ndarray:
    astra = pytest.importorskip("astra")
    vol_geom = astra.create_vol_geom(*shape)
    proj_geom = astra.create_proj_geom("parallel", spacing, n_det, angles)
    projector_id = astra.create_projector(kind, proj_geom, vol_geom)
    matrix_id = astra.projector.matrix(projector_id)
    try:
        return astra.matrix.get(matrix_id).toarray().astype(np.float64)
    finally:
        astra.matrix.delete(matrix_id)
        astra.projector.delete(projector_id)


@pytest.mark.parametrize(("model", "kind"), [("strip", "strip"), ("joseph", "linear")])
@pytest.mark.parametrize(("shape", "n_det", "spacing"), [((16, 16), 16, 1.0), ((9, 12), 15, 0.8), ((12, 7), 11, 1.3)])
def test_matches_astra(model, kind, shape, n_det, spacing):
    """Ours at θ equals ASTRA's 2-D parallel projector at -θ (ASTRA weights are also per unit bin width)."""
    angles = np.deg2rad([-75.0, -37.0, 0.0, 13.0, 45.0, 90.0, 120.0, 200.0])
    ref = _astra_matrix(kind, -angles, shape, n_det, spacing)
    ours = ParallelBeamProjector(angles, shape, n_det=n_det, det_spacing=spacing, model=model, dtype="float64")
    np.testing.assert_allclose(ours.matrix.toarray(), ref, rtol=0, atol=1e-5 * ref.max())


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"angles": []}, "angles.*empty"),
        ({"angles": [0.0, np.nan]}, "angles.*finite.*nan"),
        ({"angles": [0.0, np.inf]}, "angles.*finite.*inf"),
        ({"angles": [[0.0, 1.0]]}, "angles.*1-D"),
        ({"angles": ["a"]}, "angles"),
        ({"shape": (0, 5)}, "shape.*positive.*0"),
        ({"shape": (5,)}, r"shape.*\(nz, nx\)"),
        ({"shape": (4.5, 5)}, "shape.*4.5"),
        ({"n_det": 0}, "n_det.*positive.*0"),
        ({"n_det": -3}, "n_det.*-3"),
        ({"det_spacing": 0.0}, "det_spacing.*positive.*0.0"),
        ({"det_spacing": np.nan}, "det_spacing.*nan"),
        ({"model": "siddon"}, r"model.*\['strip', 'joseph'\].*siddon"),
        ({"dtype": "int32"}, "dtype.*int32"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"angles": [0.0, 0.5], "shape": (5, 6)} | kwargs
    with pytest.raises(ValueError, match=match):
        ParallelBeamProjector(**args)


def test_bad_array_shapes_name_the_expected_shape():
    proj = ParallelBeamProjector([0.0, 0.5], (5, 6), n_det=7)
    with pytest.raises(ValueError, match=r"volume has shape \(6, 5\).*\(5, 6\)"):
        proj.forward(np.zeros((6, 5)))
    with pytest.raises(ValueError, match=r"volume.*\(5,\).*\(5, 6\)"):
        proj.forward(np.zeros(5))
    with pytest.raises(ValueError, match=r"sinogram has shape \(2, 6, 3\).*\(2, 7\)"):
        proj.adjoint(np.zeros((2, 6, 3)))
