"""Single steps of the real-data pipeline on synthetic data: ratios, normalisation, padding, comparison, options."""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo_microscope.pipeline import (
    PipelineOptions,
    compare_maps,
    crop_volume,
    method_of,
    normalise,
    pad_positions,
    physics_ratios,
)

LINES = ["Fe_Ka", "S_Ka"]
ANGLES = et.ureg.Quantity([-40.0, -20.0, 0.0, 20.0, 40.0], "deg")


@pytest.fixture(scope="module")
def factors():
    values = {
        "Fe_Ka": {"sigma_ion": "318 b", "omega": 0.336, "p": 0.892, "sigma_ela": "2.1e6 b"},
        "S_Ka": {"sigma_ion": "1213 b", "omega": 0.077, "p": 0.955, "sigma_ela": "1.1e6 b"},
    }
    experiment = et.Experiment(
        beam_energy="200 keV",
        lines=LINES,
        tilts=ANGLES,
        scan=et.Scan(positions=6, pixel_size="1 nm", slices=4),
        eds=et.EDSDetector(probe_current="1 nA", dwell_time="1 ms", solid_angle="0.7 sr"),
    )
    return et.plugins.physics("table")(dataset=None, values=values).compute(experiment)


def series_with_haadf(factors, constant=7.0, noise=0.0):
    rng = np.random.default_rng(0)
    lines = rng.uniform(0, 10, (2, 5, 6, 4))
    weights = factors.z_array(LINES) / factors.f_array(LINES)
    haadf = constant * np.tensordot(weights, lines, axes=1) + noise * rng.uniform(0, 1, lines.shape[1:])
    return TiltSeries(np.concatenate([haadf[None], lines]), ["HAADF", *LINES], ANGLES, "1 nm")


def test_physics_ratios_follow_eq16_and_recover_the_constant(factors):
    fit = physics_ratios(series_with_haadf(factors), factors)
    expected = 7.0 * factors.z_array(LINES) / factors.f_array(LINES)
    np.testing.assert_allclose(fit.as_array(LINES), expected, rtol=1e-10)
    assert fit.r_squared == pytest.approx(1.0)
    noisy = physics_ratios(series_with_haadf(factors, noise=50.0), factors)
    assert noisy.r_squared < 1.0
    with pytest.raises(ValueError, match="HAADF"):
        physics_ratios(series_with_haadf(factors).select(LINES), factors)


def test_normalisation_modes():
    rng = np.random.default_rng(1)
    series = TiltSeries(rng.uniform(1, 2, (1, 5, 6, 4)), ["Fe_Ka"], ANGLES, "1 nm")
    totals = normalise(series, "equal").data.sum(axis=(2, 3))[0]
    np.testing.assert_allclose(totals, totals.mean())
    slab = normalise(series, "slab").data.sum(axis=(2, 3))[0]
    np.testing.assert_allclose(slab * np.cos(ANGLES.m_as("rad")), (slab * np.cos(ANGLES.m_as("rad"))).mean())
    assert normalise(series, "none") is series
    with pytest.raises(ValueError, match="normalise"):
        normalise(series, "sideways")


def test_padding_repeats_edges_and_crop_restores_the_field():
    rng = np.random.default_rng(2)
    series = TiltSeries(rng.uniform(0, 1, (1, 5, 6, 4)), ["Fe_Ka"], ANGLES, "1 nm")
    padded = pad_positions(series, 3)
    assert padded.shape == (1, 5, 12, 4)
    np.testing.assert_array_equal(padded.data[:, :, 3:9], series.data)
    np.testing.assert_array_equal(padded.data[:, :, 0], series.data[:, :, 0])
    volume = Volume(rng.uniform(0, 1, (1, 12, 12, 4)), ["Fe_Ka"], "1 nm")
    cropped = crop_volume(volume, 3)
    np.testing.assert_array_equal(cropped.data, volume.data[:, 3:9, 3:9])
    assert cropped.provenance[-1]["action"] == "crop_to_field"


def test_compare_maps_of_identical_and_swapped_maps():
    rng = np.random.default_rng(3)
    fe = rng.uniform(0, 1, (8, 8, 3))
    a = CompositionMaps(np.stack([fe, 1 - fe]), ["Fe", "S"], "1 nm", mask=np.ones(fe.shape, bool))
    same = compare_maps(a, a)
    assert same["Fe"]["pearson"] == pytest.approx(1.0) and same["Fe"]["dice_rich"] == pytest.approx(1.0)
    swapped = CompositionMaps(np.stack([1 - fe, fe]), ["Fe", "S"], "1 nm", mask=np.ones(fe.shape, bool))
    opposite = compare_maps(a, swapped)
    assert opposite["Fe"]["pearson"] == pytest.approx(-1.0) and opposite["Fe"]["dice_rich"] == 0.0


def test_method_of_reads_the_solver_from_the_provenance():
    volume = Volume(np.zeros((1, 4, 4, 2)), ["Fe_Ka"], "1 nm", provenance=[{"action": "reconstruct", "plugin": "sirt"}])
    assert method_of(volume) == "sirt"
    assert method_of(volume.replace(provenance=[{"action": "reconstruct", "plugin": "hebt-sirt"}])) == "hebt-sirt"
    with pytest.raises(ValueError, match="no reconstruction step"):
        method_of(volume.replace(provenance=[]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"normalise": "both"}, "normalise"),
        ({"ratios": "guess"}, "ratios"),
        ({"rebin": 0}, "rebin"),
        ({"solvers": []}, "solvers"),
        ({"solvers": ["sirt"], "solver_options": {"cgls": {"iterations": 3}}}, "solver_options"),
        ({"pad": -1}, "pad"),
        ({"series": "manual"}, "series"),
    ],
)
def test_bad_options_name_the_option(change, message):
    with pytest.raises(ValueError, match=message):
        PipelineOptions(**change)
