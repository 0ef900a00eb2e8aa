"""Absorption: detector geometry, the attenuated operator, Beer–Lambert, the correction loop, k- and ζ-factors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edstomo import testing
from edstomo.absorption import AbsorptionCorrection, AbsorptionModel, mass_attenuation, partial_densities
from edstomo.errors import EdstomoError, InputError
from edstomo.experiment import EDSDetector, Experiment, ExperimentError, HAADFDetector, Scan, TiltScheme
from edstomo.operators import projector_for
from edstomo.operators.attenuation import AttenuatedProjector, detector_direction, path_integrals
from edstomo.registry import plugins
from edstomo.study import interior

DOSE = {"probe_current": "1 pA", "dwell_time": "1 s"}


def small_experiment(**eds) -> Experiment:
    return Experiment(
        beam_energy="200 keV",
        lines=["O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka"],
        tilts=TiltScheme(start="-60 deg", stop="60 deg", step="15 deg"),
        scan=Scan(positions=16, pixel_size="40 nm", slices=8),
        haadf=HAADFDetector(electrons_per_pixel="1e5 e"),
        eds=EDSDetector(electrons_per_pixel="1e9 e", **(eds or {"elevation": "18 deg", "solid_angle": "0.7 sr"})),
    )


# ----------------------------------------------------------------- geometry in the experiment
def test_four_detectors_add_their_solid_angles_and_round_trip():
    heads = [{"elevation": "18 deg", "azimuth": f"{a} deg", "solid_angle": "0.2 sr"} for a in (45, 135, 225, 315)]
    exp = small_experiment(detectors=heads)
    assert exp.eds.solid_angle.m_as("sr") == pytest.approx(0.8)
    assert [h.azimuth.m_as("deg") for h in exp.eds.heads] == [45, 135, 225, 315]
    assert Experiment.from_yaml(exp.to_yaml()) == exp


def test_a_plain_eds_detector_has_no_geometry_and_absorption_says_what_is_missing():
    exp = small_experiment(solid_angle="0.7 sr")
    assert exp.eds.heads == []
    with pytest.raises(InputError, match="eds.elevation"):
        AbsorptionModel(exp)


@pytest.mark.parametrize("elevation", ["0 deg", "90 deg", "-5 deg", "120 deg"])
def test_elevation_outside_the_open_quarter_turn_is_refused(elevation):
    data = small_experiment().to_dict()
    data["eds"]["elevation"] = elevation
    with pytest.raises(ExperimentError, match=rf"eds\.elevation: '{elevation}' must lie strictly between 0 and 90 deg"):
        Experiment.model_validate(data)


def test_unknown_window_material_and_disagreeing_solid_angles_are_refused():
    head = {
        "elevation": "18 deg",
        "solid_angle": "0.3 sr",
        "window": [{"material": "Unobtainium", "thickness": "5 nm"}],
    }
    with pytest.raises(ExperimentError, match=r"window\.0\.material: 'Unobtainium' is neither a chemical formula"):
        small_experiment(detectors=[head])
    head = {"elevation": "18 deg", "solid_angle": "0.3 sr"}
    with pytest.raises(ExperimentError, match="differs from the sum of the detectors' solid angles 0.3 sr"):
        small_experiment(detectors=[head], solid_angle="0.7 sr")


# ------------------------------------------------------------------------- the operator
def test_detector_direction_turns_with_the_tilt_and_leaves_the_plane_with_the_azimuth():
    e = math.radians(18)
    for tilt in np.radians([-60, -10, 0, 35, 70]):
        d = detector_direction(e, 0.0, tilt)
        assert np.linalg.norm(d) == pytest.approx(1.0)
        assert d[2] == 0.0  # azimuth 0: in the slice plane
        # the angle to the beam (cos θ, −sin θ, 0) stays 90° + elevation
        assert np.dot(d, [math.cos(tilt), -math.sin(tilt), 0]) == pytest.approx(-math.sin(e))
    assert detector_direction(e, math.radians(90), 0.3)[2] == pytest.approx(math.cos(e))


def test_attenuated_projector_passes_the_dot_test_and_is_w_without_absorption():
    projector = projector_for(np.radians(np.arange(-60, 61, 20)), (9, 11), dtype="float64")
    rng = np.random.default_rng(3)
    operator = AttenuatedProjector(projector, rng.uniform(0.2, 1.0, (7, 9, 11, 2, 3)))
    testing.dottest(operator, batch=(2, 3))
    testing.dottest(operator.subset([1, 4]), batch=(2, 3))
    x = rng.uniform(size=(9, 11, 2, 3))
    clear = AttenuatedProjector(projector, np.exp(-np.zeros((7, 9, 11, 2, 3))))  # μ = 0
    assert np.array_equal(clear.forward(x), projector.forward(x))
    assert np.array_equal(clear.adjoint(projector.forward(x)), projector.adjoint(projector.forward(x)))
    with pytest.raises(InputError, match="batch axes"):
        operator.forward(x[:, :, :1])


def test_slab_along_a_grid_axis_matches_beer_lambert():
    """An emitter in a uniform slab: the path to the detector crosses (k + ½) voxels of it."""
    elevation = math.radians(20)
    direction = detector_direction(elevation, 0.0, elevation)  # at tilt = elevation the path runs along +x
    assert np.allclose(direction, [0, 1, 0])
    mu_rho = 0.13  # per pixel
    fields = np.zeros((5, 12, 3, 1))
    fields[:, 4:, :, 0] = mu_rho
    transmission = np.exp(-path_integrals(fields, direction)[2, :, 1, 0])
    expected = [math.exp(-mu_rho * (12 - j - 0.5)) if j >= 4 else math.exp(-mu_rho * 8) for j in range(12)]
    np.testing.assert_allclose(transmission, expected, rtol=1e-12)


def test_oblique_path_through_a_uniform_cube_is_within_a_voxel_of_the_exact_length():
    direction = detector_direction(math.radians(18), math.radians(45), math.radians(30))
    fields = np.full((24, 24, 24, 1), 0.05)
    integrals = path_integrals(fields, direction)[..., 0]
    for point in ([12, 12, 12], [6, 15, 9], [18, 5, 12]):
        exits = [((23.5 if d > 0 else -0.5) - p) / d for p, d in zip(point, direction) if abs(d) > 1e-12]
        assert integrals[tuple(point)] == pytest.approx(0.05 * min(exits), abs=0.05 * 1.5)


def test_silicate_attenuation_is_the_expected_beer_lambert_transmission():
    """O Kα through 300 nm of olivine Fo80 (3.4 g/cm³) is about 0.7, Fe Kα about 0.99 (the issue's numbers)."""
    mu = mass_attenuation(["O_Ka", "Fe_Ka"], ["O", "Mg", "Si", "Fe"])
    fractions = np.array([0.42, 0.24, 0.19, 0.15])
    transmission = np.exp(-(mu @ fractions) * 3.4 * 300e-7)
    assert transmission[0] == pytest.approx(0.69, abs=0.02)
    assert transmission[1] == pytest.approx(0.994, abs=0.003)


# --------------------------------------------------------------- forward model and correction
def _particle(exp):
    phantom = plugins.phantom("shapes")(
        shapes=[
            {"radii": ["280 nm"] * 3, "composition": {"O": 0.44, "Mg": 0.30, "Si": 0.19, "Fe": 0.07}, "density": 3.35},
            {"radii": ["140 nm"] * 3, "composition": {"O": 0.37, "Mg": 0.14, "Si": 0.16, "Fe": 0.33}, "density": 3.8},
        ]
    )
    return phantom, phantom.generate(exp)


def test_absorbing_forward_is_thin_film_without_absorption_and_attenuates_oxygen_most():
    exp = small_experiment()
    physics = plugins.physics("mcxray")(elastic="wentzel-annular").compute(exp)
    _, truth = _particle(exp)
    absorbing = plugins.forward("absorbing")(exp, physics)
    thin = plugins.forward("thin-film")(exp, physics).expected(truth)
    attenuated = absorbing.expected(truth)
    ratio = attenuated[1:].sum(axis=(1, 2, 3)) / thin[1:].sum(axis=(1, 2, 3))
    assert np.array_equal(attenuated[0], thin[0])  # the HAADF is not attenuated
    assert list(np.argsort(ratio)) == [0, 1, 2, 3]  # O < Mg < Si < Fe
    assert 0.6 < ratio[0] < 0.9 and ratio[3] > 0.98
    absorbing.model.mu = np.zeros_like(absorbing.model.mu)  # μ = 0
    assert np.array_equal(absorbing.expected(truth), thin)


def test_correction_recovers_the_fractions_of_an_absorbing_particle():
    exp = small_experiment()
    physics = plugins.physics("mcxray")(elastic="wentzel-annular").compute(exp)
    phantom, truth = _particle(exp)
    series = plugins.forward("absorbing")(exp, physics).expected(truth)
    from edstomo.data import TiltSeries

    series = TiltSeries(
        data=series, channels=["HAADF", *exp.lines], angles=exp.angles, pixel_size=exp.scan.pixel_size, experiment=exp
    )
    solver = plugins.solver("sirt")(iterations=40)
    quantifier = plugins.quantifier("eds")(physics)
    correction = AbsorptionCorrection(AbsorptionModel(exp), density="maps", max_iterations=4)
    result = correction.run(series, solver.solve, quantifier.quantify, physics.f_array(exp.lines))
    core = interior(phantom.regions(exp)[1], 1)

    def error(composition):
        return abs(composition.fraction("O")[core].mean() - truth.fraction("O")[core].mean())

    assert error(result.uncorrected) > 0.03  # three wt% of O lost in the core
    assert error(result.composition) < 0.5 * error(result.uncorrected)
    assert result.history and result.composition.provenance[-1]["action"] == "absorption-correction"
    assert correction.couples_slices
    np.testing.assert_array_equal(solver.solve(result.series).data, result.maps.data)  # what the final maps fit
    for line in exp.lines:  # the measured rays are the corrected ones times their transmissions
        index = series.channels.index(line)
        t = result.transmission[line]
        assert t.shape == series.data[index].shape and 0 < t.min() <= t.max() <= 1
        np.testing.assert_allclose(result.series.data[index] * t, series.data[index], rtol=1e-12)
    assert result.transmission["O_Ka"].min() < result.transmission["Fe_Ka"].min()  # O is absorbed most
    np.testing.assert_array_equal(result.series.data[0], series.data[0])  # the HAADF is not corrected


def test_negative_density_and_bad_density_options_are_clear_errors():
    exp = small_experiment()
    _, truth = _particle(exp)
    with pytest.raises(InputError, match=r"density: -3.0 g/cm³ must be positive"):
        partial_densities(truth, ["O", "Mg", "Si", "Fe"], -3.0)
    with pytest.raises(InputError, match="density: .* is negative"):
        AbsorptionModel(exp).factors(-np.ones((16, 16, 8, 4)), [0.0])
    with pytest.raises(InputError, match="density: 'heavy' must be 'mixture', 'maps' or a density in g/cm³"):
        AbsorptionCorrection(AbsorptionModel(exp), density="heavy")
    with pytest.raises(InputError, match=r"\['O'\] are gases"):
        partial_densities(truth, ["O", "Mg", "Si", "Fe"], "mixture")


# ------------------------------------------------------------------------ k- and ζ-factors
def test_k_and_zeta_factors_consistent_with_the_cross_sections_quantify_identically(tmp_path):
    series = testing.solver_test_series(slices=2, size=12, tilts=9)
    exp = series.experiment
    reference = plugins.physics("mcxray")().compute(exp)
    f = reference.f_array(exp.lines)
    k = {line: float(f[0] / value) for line, value in zip(exp.lines, f)}  # k_A = f_R / f_A
    omega = exp.eds.solid_angle.m_as("sr")
    zeta = {
        line: f"{4 * math.pi / (6.02214076e23 * omega * value * 1e-24) * 10:.12g} kg/m**2/e"
        for line, value in zip(exp.lines, f)
    }
    (tmp_path / "k.yaml").write_text("".join(f"{line}: {value!r}\n" for line, value in k.items()))
    maps = plugins.solver("sirt")(iterations=5, channels=exp.lines).solve(series)
    expected = plugins.quantifier("eds")(reference, threshold=1e-3).quantify(maps)
    for physics in (
        plugins.physics("kfactor")(file=str(tmp_path / "k.yaml")),
        plugins.physics("zeta")(factors=zeta),
    ):
        factors = physics.compute(exp)
        found = plugins.quantifier("eds")(factors, threshold=1e-3 * f[0] / factors.f_array(exp.lines)[0]).quantify(maps)
        # the maps are float32 (as the volumes): equal to a few float32 roundings
        np.testing.assert_allclose(found.weight_fractions, expected.weight_fractions, rtol=4 * 2**-24, atol=1e-9)
    zeta_f = plugins.physics("zeta")(factors=zeta).compute(exp).f_array(exp.lines)
    np.testing.assert_allclose(zeta_f, f, rtol=1e-9)  # ζ-factors are absolute


def test_a_missing_k_factor_names_the_line():
    exp = testing.solver_test_series().experiment
    physics = plugins.physics("kfactor")(factors={exp.lines[0]: 1.0})
    with pytest.raises(EdstomoError, match=rf"no k-factor for line '{exp.lines[1]}'"):
        physics.compute(exp)
    with pytest.raises(
        EdstomoError, match=r"""physics 'kfactor': option "factors\['Cu_Ka'\]" = -2.0: a k-factor: a positive number"""
    ):
        plugins.physics("kfactor")(factors={"Cu_Ka": -2.0})
