import numpy as np
import pytest
from edstomo import plugins
from edstomo.lines import element_density
from edstomo.units import ureg
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment


def test_core_shell_matches_the_paper(paper_experiment, paper_truth):
    assert paper_truth.shape == (97, 97, 1)
    assert paper_truth.elements == ["Ag", "Au"]
    regions = plugins.phantom("core-shell")().regions(paper_experiment)
    core, shell = regions["core"][..., 0], regions["shell"][..., 0]
    ag, au = paper_truth.fraction("Ag")[..., 0], paper_truth.fraction("Au")[..., 0]
    interior_core = core & (paper_truth.fraction("Au")[..., 0] > 0)
    # away from the antialiased boundaries the compositions are exact
    radius = np.hypot(*np.meshgrid(np.arange(97) - 48, np.arange(97) - 48, indexing="ij")) * 1.5
    deep_core, deep_shell = radius < 28, (radius > 32) & (radius < 53)
    np.testing.assert_allclose(au[deep_core], 0.8)
    np.testing.assert_allclose(ag[deep_core], 0.2)
    np.testing.assert_allclose(ag[deep_shell], 0.8)
    np.testing.assert_allclose(au[deep_shell], 0.2)
    assert interior_core.sum() > 0 and shell.sum() > core.sum()
    # density of an ideal mixture, 1/rho = sum C/rho_A
    rho_core = 1 / (0.8 / element_density("Au") + 0.2 / element_density("Ag"))
    np.testing.assert_allclose(paper_truth.density[..., 0][deep_core], rho_core)
    # conservation: fractions sum to 1 inside, 0 outside
    total = paper_truth.weight_fractions.sum(axis=0)
    inside = paper_truth.density > 0
    np.testing.assert_allclose(total[inside], 1.0, atol=1e-12)
    assert np.all(total[~inside] == 0)


def test_core_shell_area_and_mass_are_right():
    exp = yuan2020_phantom_experiment()
    truth = plugins.phantom("core-shell")(outer_radius="55 nm", core_radius="30 nm").generate(exp)
    pixel_area = 1.5**2
    rho_au = truth.partial_density()[1, ..., 0]
    # partial density of Au integrated over the slice = sum over regions of area * C_Au * rho_region
    rho = {
        name: 1 / sum(c / element_density(e) for e, c in comp.items())
        for name, comp in {"core": {"Au": 0.8, "Ag": 0.2}, "shell": {"Au": 0.2, "Ag": 0.8}}.items()
    }
    core_area, outer_area = np.pi * 30**2, np.pi * 55**2
    expected = core_area * 0.8 * rho["core"] + (outer_area - core_area) * 0.2 * rho["shell"]
    assert rho_au.sum() * pixel_area == pytest.approx(expected, rel=2e-4)


def test_sphere_in_3d():
    exp = yuan2020_phantom_experiment().model_copy(
        update={"scan": yuan2020_phantom_experiment().scan.model_copy(update={"positions": 41, "slices": 41})}
    )
    truth = plugins.phantom("core-shell")(outer_radius="25 nm", core_radius="12 nm", dimension=3).generate(exp)
    assert truth.shape == (41, 41, 41)
    occupied = (truth.density > 0).sum()
    volume = (truth.density / truth.density.max()).sum() * 1.5**3
    assert occupied > 0
    # the mass-weighted volume of the sphere lies between core and full sphere densities
    assert 0.5 * 4 / 3 * np.pi * 25**3 < volume < 4 / 3 * np.pi * 25**3 * 1.01
    # symmetric about the centre along every axis
    np.testing.assert_allclose(truth.density, truth.density[::-1, ::-1, ::-1], atol=1e-12)
    np.testing.assert_allclose(truth.density, np.transpose(truth.density, (2, 1, 0)), atol=1e-12)


def test_core_shell_errors(paper_experiment):
    with pytest.raises(ValueError, match="core_radius"):
        plugins.phantom("core-shell")(outer_radius="20 nm", core_radius="30 nm")
    with pytest.raises(ValueError, match=r"outer_radius: 100 nm does not fit"):
        plugins.phantom("core-shell")(outer_radius="100 nm").generate(paper_experiment)
    with pytest.raises(ValueError, match=r"core: weight fractions .* sum to 0.9"):
        plugins.phantom("core-shell")(core={"Au": 0.7, "Ag": 0.2})
    with pytest.raises(ValueError, match="has no unit"):
        plugins.phantom("core-shell")(outer_radius=55)


def test_arrays_phantom_round_trip(paper_experiment, paper_truth):
    fractions = {e: paper_truth.fraction(e)[..., 0] for e in paper_truth.elements}
    density = ureg.Quantity(paper_truth.density[..., 0] * 1000, "kg/m**3")
    own = plugins.phantom("arrays")(weight_fractions=fractions, density=density).generate(paper_experiment)
    np.testing.assert_allclose(own.density, paper_truth.density)
    np.testing.assert_allclose(own.weight_fractions, paper_truth.weight_fractions)


@pytest.mark.parametrize(
    ("fractions", "density", "message"),
    [
        ({"Ag": np.ones((4, 4))}, ureg.Quantity(np.full((4, 4), np.nan), "g/cm**3"), "NaN"),
        ({"Ag": np.ones((4, 4))}, ureg.Quantity(-np.ones((4, 4)), "g/cm**3"), "negative"),
        ({"Ag": np.ones((4, 4))}, np.ones((4, 4)), "has no unit"),
        ({"Ag": np.ones((4, 4))}, ureg.Quantity(np.ones((4, 4)), "g"), "expected a quantity in g/cm"),
        ({"Ag": np.ones((3, 4))}, ureg.Quantity(np.ones((4, 4)), "g/cm**3"), r"shape \(3, 4\)"),
        ({"Ag": np.full((4, 4), 0.5)}, ureg.Quantity(np.ones((4, 4)), "g/cm**3"), "sum to 1"),
        ({"Qq": np.ones((4, 4))}, ureg.Quantity(np.ones((4, 4)), "g/cm**3"), "unknown element"),
    ],
)
def test_arrays_phantom_rejects_bad_input(fractions, density, message):
    with pytest.raises(ValueError, match=message):
        plugins.phantom("arrays")(weight_fractions=fractions, density=density)


def test_arrays_phantom_must_match_the_grid(paper_experiment):
    phantom = plugins.phantom("arrays")(
        weight_fractions={"Ag": np.ones((8, 8))}, density=ureg.Quantity(np.ones((8, 8)), "g/cm**3")
    )
    with pytest.raises(ValueError, match=r"does not match the experiment's grid \(97, 97, 1\)"):
        phantom.generate(paper_experiment)


# ------------------------------------------------------------------ shapes
def _grid_experiment(slices: int = 1):
    from edstomo.experiment import Experiment

    return Experiment.model_validate(
        {
            "beam_energy": "200 keV",
            "lines": ["Fe_Ka", "Ni_Ka"],
            "tilts": ["0 deg"],
            "scan": {"positions": 80, "pixel_size": "1 nm", "slices": slices},
            "eds": {"electrons_per_pixel": "1e6 e", "solid_angle": "0.7 sr"},
        }
    )


def test_shapes_areas_overlap_and_masses():
    body = {"kind": "ellipsoid", "radii": ["30 nm", "20 nm", "500 nm"], "composition": {"Fe": 1.0}}
    inclusion = {"kind": "box", "radii": ["5 nm", "5 nm", "5 nm"], "rotation": "45 deg", "composition": {"Ni": 1.0}}
    phantom = plugins.phantom("shapes")(shapes=[body, inclusion], supersample=12)
    maps = phantom.generate(_grid_experiment())
    rho_fe, rho_ni = element_density("Fe"), element_density("Ni")
    fe_mass = maps.partial_density()[maps.elements.index("Fe")].sum()
    ni_mass = maps.partial_density()[maps.elements.index("Ni")].sum()
    assert fe_mass / rho_fe == pytest.approx(np.pi * 30 * 20 - 100, rel=2e-3)  # ellipse area minus the square's
    assert ni_mass / rho_ni == pytest.approx(100, rel=1e-2)  # a 10 nm square, turned by 45° (sampled edges)
    inside = maps.density > 0
    np.testing.assert_allclose(maps.weight_fractions.sum(axis=0)[inside], 1.0)
    regions = phantom.regions(_grid_experiment())
    assert not (regions[0] & regions[1]).any() and regions[1].sum() == pytest.approx(100, abs=15)


def test_shapes_given_density_and_three_dimensions():
    ball = {"radii": ["10 nm", "10 nm", "10 nm"], "composition": {"Fe": 0.5, "Ni": 0.5}, "density": 5.0}
    maps = plugins.phantom("shapes")(shapes=[ball]).generate(_grid_experiment(slices=24))
    assert maps.density.max() == pytest.approx(5.0)
    assert maps.density.sum() / 5.0 == pytest.approx(4 / 3 * np.pi * 1000, rel=3e-3)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"radii": ["1 nm", "2 nm", "-3 nm"], "composition": {"Fe": 1}}, r"shapes\[0\]\.radii\[2\].*positive"),
        ({"radii": ["1 nm", "2 nm", "3 nm"], "composition": {"Fe": 0.5}}, "sum to 0.5"),
        ({"radii": ["1 nm", "2 nm", "3 nm"], "composition": {"Xx": 1}}, "Xx"),
        ({"kind": "cone", "radii": ["1 nm", "2 nm", "3 nm"], "composition": {"Fe": 1}}, "kind"),
        ({"radii": [1, 2, 3], "composition": {"Fe": 1}}, "no unit"),
    ],
)
def test_shapes_bad_input_is_named(shape, message):
    with pytest.raises(ValueError, match=message):
        plugins.phantom("shapes")(shapes=[shape])
