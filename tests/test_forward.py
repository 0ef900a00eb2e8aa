import numpy as np
import pytest
from edstomo import plugins
from edstomo.experiment import Experiment
from edstomo.factors import avogadro
from edstomo.lines import element_density
from edstomo.units import ureg
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment


def simulate(experiment, factors, truth, **kwargs):
    return plugins.forward("thin-film")(experiment, factors).simulate(truth, **kwargs)


def test_noise_free_counts_of_a_pure_disk_match_the_thin_film_formula():
    exp = yuan2020_phantom_experiment()
    factors = plugins.physics("table")().compute(exp)
    size = exp.scan.positions
    radius_px = 20
    yy, xx = np.meshgrid(np.arange(size) - 48, np.arange(size) - 48, indexing="ij")
    disk = (np.hypot(yy, xx) <= radius_px).astype(float)
    rho = element_density("Ag")
    truth = plugins.phantom("arrays")(
        weight_fractions={"Ag": disk, "Au": np.zeros_like(disk)}, density=ureg.Quantity(disk * rho, "g/cm**3")
    ).generate(exp)
    series = simulate(exp, factors, truth, noise=None)
    centre = series.channel("Ag_La")[:, 48, 0]  # ray through the centre at every tilt
    thickness = ureg.Quantity(2 * radius_px * 1.5 + 1.5, "nm")  # a rasterised disk: 41 pixels across
    n = avogadro() * exp.eds_electrons_per_pixel.m_as("e") * 0.7 / (4 * np.pi)
    expected = (n * factors.f["Ag_La"] * ureg.Quantity(rho, "g/cm**3") * thickness).m_as("")
    assert centre[exp.angles.m_as("deg") == 0][0] == pytest.approx(expected, rel=1e-6)
    assert np.all(series.channel("Au_Ma") == 0)


def test_haadf_is_the_response_weighted_sum_of_eds(paper_experiment, paper_factors, paper_truth):
    """Eq. 15-16: I_H = sum_A r_A I_A with r_A = D_H N_A z_A / (n f_A)."""
    series = simulate(paper_experiment, paper_factors, paper_truth, noise=None)
    n = paper_experiment.eds_electrons_per_pixel.m_as("e") * paper_experiment.eds.solid_angle.m_as("sr") / (4 * np.pi)
    d_h = paper_experiment.haadf_electrons_per_pixel.m_as("e")
    ratios = {line: d_h * paper_factors.z[line].m / (n * paper_factors.f[line].m) for line in paper_experiment.lines}
    combined = sum(r * series.channel(line) for line, r in ratios.items())
    np.testing.assert_allclose(series.channel("HAADF"), combined, rtol=1e-12)


def test_counts_are_linear_in_dose(paper_experiment, paper_factors, paper_truth):
    base = simulate(paper_experiment, paper_factors, paper_truth, noise=None)
    exp3 = paper_experiment.model_copy(
        update={"eds": paper_experiment.eds.model_copy(update={"dwell_time": ureg.Quantity(1.5, "s")})}
    )
    triple = simulate(exp3, paper_factors, paper_truth, noise=None)
    for line in paper_experiment.lines:
        np.testing.assert_allclose(triple.channel(line), 3 * base.channel(line), rtol=1e-12)
    np.testing.assert_array_equal(triple.channel("HAADF"), base.channel("HAADF"))


def test_counts_scale_exactly_with_f(paper_experiment, paper_truth):
    table = plugins.physics("table")
    base = table().compute(paper_experiment)
    doubled = table(values={"Ag_La": {"sigma_ion": "4880 b"}}).compute(paper_experiment)
    assert doubled.f["Ag_La"].m == pytest.approx(2 * base.f["Ag_La"].m, rel=1e-15)
    one = simulate(paper_experiment, base, paper_truth, noise=None)
    two = simulate(paper_experiment, doubled, paper_truth, noise=None)
    np.testing.assert_allclose(two.channel("Ag_La"), 2 * one.channel("Ag_La"), rtol=1e-12)
    np.testing.assert_array_equal(two.channel("Au_Ma"), one.channel("Au_Ma"))


def test_poisson_noise_is_seeded_and_unbiased(paper_experiment, paper_factors, paper_truth):
    mean = simulate(paper_experiment, paper_factors, paper_truth, noise=None)
    a = simulate(paper_experiment, paper_factors, paper_truth, noise="poisson", seed=7)
    b = simulate(paper_experiment, paper_factors, paper_truth, noise="poisson", seed=7)
    c = simulate(paper_experiment, paper_factors, paper_truth, noise="poisson", seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    eds = a.channel("Ag_La")
    assert np.all(eds == np.round(eds))
    np.testing.assert_array_equal(a.channel("HAADF"), mean.channel("HAADF"))  # HAADF noise is opt-in
    # the total count is Poisson with the total mean: within 5 standard deviations
    total_mean = mean.channel("Ag_La").sum()
    assert abs(eds.sum() - total_mean) < 5 * np.sqrt(total_mean)
    # variance equals mean where the mean is large
    big = mean.channel("Ag_La") > 300
    z = (eds[big] - mean.channel("Ag_La")[big]) / np.sqrt(mean.channel("Ag_La")[big])
    assert abs(z.std() - 1) < 0.1
    with pytest.raises(ValueError, match="explicit seed"):
        simulate(paper_experiment, paper_factors, paper_truth, noise="poisson")
    with pytest.raises(ValueError, match="noise: 'gauss'"):
        simulate(paper_experiment, paper_factors, paper_truth, noise="gauss", seed=0)


def test_series_metadata_and_provenance(paper_experiment, paper_factors, paper_truth):
    series = simulate(paper_experiment, paper_factors, paper_truth, seed=0)
    assert series.channels == ["HAADF", "Ag_La", "Au_Ma"]
    assert series.shape == (3, 31, 97, 1)
    assert series.experiment is paper_experiment
    assert [step["action"] for step in series.provenance] == ["physics", "simulate"]
    assert series.provenance[-1]["parameters"]["phantom_provenance"][0]["plugin"] == "core-shell"


def test_projector_models_agree_on_a_smooth_phantom(paper_experiment, paper_factors, paper_truth):
    strip = plugins.forward("thin-film")(paper_experiment, paper_factors).expected(paper_truth)
    joseph = plugins.forward("thin-film")(paper_experiment, paper_factors, projector="joseph").expected(paper_truth)
    assert np.abs(strip - joseph).max() < 0.05 * strip.max()
    np.testing.assert_allclose(strip.sum(axis=(2, 3)), joseph.sum(axis=(2, 3)), rtol=5e-3)


def test_mismatched_elements_and_grids_are_errors(paper_experiment, paper_factors, paper_truth):
    other = Experiment.model_validate({**paper_experiment.to_dict(), "lines": ["Co_Ka", "Zn_Ka"]})
    with pytest.raises(ValueError, match="no physics factors for lines"):
        plugins.forward("thin-film")(other, paper_factors)
    model = plugins.forward("thin-film")(paper_experiment, paper_factors)
    small = paper_experiment.model_copy(update={"scan": paper_experiment.scan.model_copy(update={"positions": 50})})
    with pytest.raises(ValueError, match=r"phantom grid \(97, 97, 1\) does not match"):
        plugins.forward("thin-film")(small, paper_factors).simulate(paper_truth, seed=0)
    only_ag = paper_truth.replace(weight_fractions=paper_truth.weight_fractions[:1], elements=["Ag"])
    with pytest.raises(ValueError, match="do not match the experiment's lines"):
        model.expected(only_ag)
