"""Alignment of tilt series (edstomo_microscope.alignment): known shifts, rotation and axis offset recovered."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import edstomo as et
import numpy as np
import pytest
from edstomo.data import TiltSeries
from edstomo.operators import ParallelBeamProjector
from edstomo_microscope.alignment import (
    Alignment,
    apply_alignment,
    centre_of_mass,
    estimate_tilt_axis,
    find_tilt_axis,
    haadf_eds_shifts,
    series_shifts,
    tilt_axis_com,
    tilt_axis_max_image,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ANGLES = np.arange(-30.0, 31.0, 10.0)


def _blob_image(shape=(48, 40), seed=0) -> np.ndarray:
    """A smooth, textured, non-negative image well inside its borders."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    image = np.zeros(shape)
    for _ in range(8):
        r0, c0 = rng.uniform(12, shape[0] - 12), rng.uniform(12, shape[1] - 12)
        width = rng.uniform(2.0, 4.0)
        image += rng.uniform(0.5, 2.0) * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * width**2))
    return image


def _series(images: np.ndarray, channels=("HAADF",), angles=ANGLES, pixel="1 nm") -> TiltSeries:
    return TiltSeries(images, list(channels), et.ureg.Quantity(angles, "deg"), pixel)


@pytest.mark.parametrize(("fractional", "tolerance"), [(False, 0.05), (True, 0.15)])
def test_series_xcorr_recovers_known_shifts(fractional, tolerance):
    image = _blob_image()
    rng = np.random.default_rng(3)
    moves = rng.uniform(-4, 4, size=(ANGLES.size, 2))
    moves = moves if fractional else np.round(moves)  # fractional moves blur (linear interpolation)
    moves[np.argmin(np.abs(ANGLES))] = 0.0  # the reference tilt stays
    series = _series(np.stack([image] * ANGLES.size)[None])
    misaligned = apply_alignment(series, Alignment.from_shifts(series.angles, moves, "1 nm"), crop=False)
    found = series_shifts(misaligned, "xcorr", upsample=20)
    np.testing.assert_allclose(found, -moves, atol=tolerance)


def test_series_com_centres_every_tilt():
    image = _blob_image()
    moves = np.array([[3.0, -2.0], [0.0, 1.0], [-1.5, 0.5], [0.0, 0.0], [2.0, 2.0], [-3.0, 0.0], [1.0, -1.0]])
    series = _series(np.stack([image] * ANGLES.size)[None])
    misaligned = apply_alignment(series, Alignment.from_shifts(series.angles, moves, "1 nm"), crop=False)
    centring = Alignment.from_shifts(series.angles, series_shifts(misaligned, "com"), "1 nm")
    aligned = apply_alignment(misaligned, centring, crop=False)
    centre = (np.array(aligned.data.shape[2:]) - 1) / 2
    for t in range(ANGLES.size):
        np.testing.assert_allclose(centre_of_mass(aligned.data[0, t]), centre, atol=0.6)


def test_haadf_eds_com_shift_is_the_offset_between_the_images():
    image = _blob_image()
    offset = np.array([2.0, -1.0])
    lines = np.stack([image] * ANGLES.size)
    series = _series(np.stack([lines, lines]), channels=("HAADF", "Fe_Ka"))
    moved = Alignment.from_shifts(series.angles, np.zeros((ANGLES.size, 2)), "1 nm", haadf_shifts=[offset] * 7)
    shifted = apply_alignment(series, moved, crop=False)  # the HAADF channel moved by +offset
    np.testing.assert_allclose(haadf_eds_shifts(shifted, "com"), np.tile(-offset, (ANGLES.size, 1)), atol=1e-3)
    np.testing.assert_allclose(haadf_eds_shifts(shifted, "xcorr", upsample=20), np.tile(-offset, (7, 1)), atol=0.1)


def test_alignment_round_trip_and_pixel_rescaling(tmp_path):
    angles = et.ureg.Quantity(ANGLES, "deg")
    shifts = np.arange(14, dtype=float).reshape(7, 2) / 3
    alignment = Alignment.from_shifts(angles, shifts, "2 nm", axis_shift=1.5, axis_rotation=-0.7)
    path = alignment.save(tmp_path / "alignment.json")
    loaded = Alignment.load(path)
    np.testing.assert_array_equal(loaded.shifts, shifts)
    assert (loaded.axis_shift, loaded.axis_rotation) == (1.5, -0.7)
    assert loaded.pixel_size == et.ureg.Quantity(2.0, "nm")
    # a 2 nm shift moves content by 1 pixel of a 2 nm series and by 2 pixels of a 1 nm series
    image = np.zeros((20, 20))
    image[10, 10] = 1.0
    one = Alignment.from_shifts(angles, np.tile([1.0, 0.0], (7, 1)), "2 nm")
    fine = _series(np.stack([image] * 7)[None], pixel="1 nm")
    moved = apply_alignment(fine, one, crop=False)
    assert moved.data[0, 0, 12, 10] == pytest.approx(1.0)


def test_alignment_errors_name_the_problem(tmp_path):
    angles = et.ureg.Quantity(ANGLES, "deg")
    with pytest.raises(ValueError, match="shifts"):
        Alignment.from_shifts(angles, np.zeros((3, 2)), "1 nm")
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not an edstomo alignment"):
        Alignment.load(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Alignment.load(tmp_path / "missing.json")
    series = _series(np.ones((1, 7, 8, 8)))
    wrong = Alignment.from_shifts(et.ureg.Quantity(ANGLES + 1, "deg"), np.zeros((7, 2)), "1 nm")
    with pytest.raises(ValueError, match="angles"):
        apply_alignment(series, wrong)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=7, max_size=7))
def test_crop_keeps_only_the_region_every_tilt_covers(moves):
    series = _series(np.ones((1, 7, 16, 12)))
    aligned = apply_alignment(series, Alignment.from_shifts(series.angles, np.array(moves, float), "1 nm"))
    assert aligned.data.min() > 0.999  # no zero-filled border left
    shifts = np.array(moves, float)
    lost = np.maximum(shifts.max(axis=0), 0) - np.minimum(shifts.min(axis=0), 0)  # the frame does not move
    assert aligned.n_positions >= 16 - lost[0] - 1 and aligned.n_slices >= 12 - lost[1] - 1
    assert aligned.experiment is None and aligned.provenance[-1]["action"] == "align"


@pytest.mark.parametrize("method", ["xcorr", "stackreg"])
def test_registration_methods_recover_integer_shifts(method):
    if method == "stackreg":
        pytest.importorskip("pystackreg")
    image = _blob_image()
    moves = np.round(np.random.default_rng(5).uniform(-4, 4, size=(ANGLES.size, 2)))
    moves[np.argmin(np.abs(ANGLES))] = 0.0
    series = _series(np.stack([image] * ANGLES.size)[None])
    misaligned = apply_alignment(series, Alignment.from_shifts(series.angles, moves, "1 nm"), crop=False)
    np.testing.assert_allclose(series_shifts(misaligned, method), -moves, atol=0.1)
    with pytest.raises(ValueError, match="method"):
        series_shifts(misaligned, "turboreg")


@pytest.fixture(scope="module")
def blobs() -> TiltSeries:
    """A tilt series of 40 balls well inside the field of view; tilt axis exactly along the slices."""
    rng = np.random.default_rng(1)
    n, slices = 64, 128
    z, x, s = np.mgrid[:n, :n, :slices]
    volume = np.zeros((n, n, slices))
    for _ in range(40):
        c = rng.uniform([16, 16, 8], [48, 48, 120])
        volume += ((z - c[0]) ** 2 + (x - c[1]) ** 2 + (s - c[2]) ** 2 < rng.uniform(3, 7) ** 2) * rng.uniform(0.5, 2)
    angles = np.arange(-60.0, 61.0, 5.0)
    sinograms = ParallelBeamProjector(np.radians(angles), (n, n)).forward(volume)
    return _series(sinograms[None], angles=angles)


def _turned(truth: TiltSeries, shift: float, rotation: float) -> TiltSeries:
    """The series with its images turned by ``rotation`` degrees (an axis at that angle) and moved by ``shift``."""
    moves = np.tile([shift, 0.0], (truth.n_tilts, 1))
    return apply_alignment(truth, Alignment(truth.angles, truth.pixel_size, moves, axis_rotation=-rotation), crop=False)


def test_tilt_axis_offset_and_rotation_are_recovered(blobs):
    shift, rotation, record = estimate_tilt_axis(_turned(blobs, 3.0, 2.0))
    assert record["determined"]
    assert shift == pytest.approx(3.0, abs=0.5)
    assert rotation == pytest.approx(2.0, abs=1.0)
    assert 0 < record["shift_uncertainty"] < 0.5 and 0 < record["rotation_uncertainty"] < 1.0
    unmoved = estimate_tilt_axis(blobs)
    assert unmoved[0] == pytest.approx(0.0, abs=0.5) and unmoved[1] == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize(("shift", "rotation"), [(3.0, 2.0), (-2.0, -3.0)])
def test_tilt_axis_by_centre_of_mass_is_recovered_within_its_uncertainty(blobs, shift, rotation):
    found_shift, found_rotation, record = tilt_axis_com(_turned(blobs, shift, rotation))
    assert record["determined"]
    assert abs(found_shift - shift) < max(3 * record["shift_uncertainty"], 0.3)
    assert abs(found_rotation - rotation) < max(3 * record["rotation_uncertainty"], 0.5)
    assert 0 < record["shift_uncertainty"] < 0.5


def test_tilt_axis_by_centre_of_mass_refuses_a_sample_wider_than_the_field(blobs):
    cut = blobs.replace(data=blobs.data[:, :, 20:44], experiment=None)  # positions cut through the balls
    shift, rotation, record = tilt_axis_com(cut)
    assert (shift, rotation, record["determined"]) == (0.0, 0.0, False)
    assert "field of view" in record["note"]


@pytest.mark.parametrize("rotation", [2.0, -3.0])
def test_tilt_axis_rotation_by_maximum_image(blobs, rotation):
    shift, found, record = tilt_axis_max_image(_turned(blobs, 0.0, rotation))
    assert record["determined"] and shift == 0.0
    assert abs(found - rotation) < max(3 * record["rotation_uncertainty"], 1.0)


def test_find_tilt_axis_takes_the_first_method_that_determines_it(blobs):
    shift, rotation, record = find_tilt_axis(_turned(blobs, 3.0, 2.0))
    assert record["method"] == "residual" and record["determined"]
    assert shift == pytest.approx(3.0, abs=0.5) and rotation == pytest.approx(2.0, abs=1.0)


# ----- the shared openNCEM series ------------------------------------------------------------------------------
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"


@pytest.fixture(scope="module")
def ncem() -> TiltSeries:
    """HAADF and Fe Kα of the openNCEM series, 4 × 4 rebinned (16 tilts, -40° to 35°)."""
    if not DATA.is_dir():
        pytest.skip("the shared openNCEM data set is not available")
    pytest.importorskip("exspy")
    from edstomo_microscope.loading import load_tilt_series
    from edstomo_microscope.metadata import MetadataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return load_tilt_series(DATA, ["Fe_Ka"], rebin=4)


@pytest.mark.parametrize(("method", "tolerance"), [("xcorr", 0.5), ("stackreg", 0.75)])
def test_tilt_series_shifts_agree_with_tomviz(ncem, method, tolerance):
    """The shifts of the shared TomVizAlignments.json (21 tilts, -50°..50°, original pixels) match ours."""
    if method == "stackreg":
        pytest.importorskip("pystackreg")
    ours = series_shifts(ncem, method)  # on the HAADF images
    tomviz = np.array(json.loads((DATA / "TomVizAlignments.json").read_text()), dtype=float)[2:18] / 4
    np.testing.assert_allclose(ours[:, 0], tomviz[:, 0], atol=tolerance)  # across the tilt axis
    np.testing.assert_allclose(ours[:, 1], -tomviz[:, 1], atol=tolerance)  # along it (TomViz's y points up)


def test_tilt_axis_search_on_openncem_gives_values_with_uncertainties_and_reasons(ncem):
    aligned = apply_alignment(ncem, Alignment(ncem.angles, ncem.pixel_size, series_shifts(ncem)))
    shift, rotation, record = find_tilt_axis(aligned)
    # a 130 nm FIB section wider than the field of view: no method determines both components ...
    assert not record["determined"]
    assert "field of view" in record["attempts"]["centre of mass"]["note"]
    assert "scatter" in record["attempts"]["residual"]["note"]
    # ... but each has a value with a finite standard uncertainty, and both are consistent with no correction
    assert np.isfinite(shift) and 0 < record["shift_uncertainty"] < 5
    assert np.isfinite(rotation) and 0 < record["rotation_uncertainty"] < 10
    assert set(record["insignificant"]) == {"shift", "rotation"}
    assert "best values" in record["note"]
