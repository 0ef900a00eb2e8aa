"""The mcxray physics plugin: the paper's factors from open physics, options, overrides, errors, extension."""

from __future__ import annotations

import json
import warnings
from typing import ClassVar

import pytest
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan
from edstomo.lines import LineError
from edstomo.registry import Registry, plugins
from edstomo.units import UnitError
from edstomo_plugins.physics.cascade import effective_cross_sections
from edstomo_plugins.physics.elastic import ModelRangeWarning
from edstomo_plugins.physics.mcxray import MCXRayPhysics
from edstomo_plugins.physics.relaxation import EADLSource, RelaxationSource, XraylibSource


def experiment(energy: str, lines: list[str], *, haadf: bool = True, **eds) -> Experiment:
    return Experiment(
        beam_energy=energy,
        lines=lines,
        tilts=["0 deg"],
        scan=Scan(positions=1, pixel_size="1 nm"),
        haadf=HAADFDetector(electrons_per_pixel="1 e", inner_angle="94 mrad", outer_angle="611 mrad")
        if haadf
        else None,
        eds=EDSDetector(electrons_per_pixel="1 e", solid_angle="1 sr", **eds),
    )


@pytest.fixture(scope="module")
def co_zn():
    return MCXRayPhysics().compute(experiment("80 keV", ["Co_Ka", "Zn_Ka"], efficiency=0.96))


def test_registered_as_physics_mcxray():
    assert plugins.physics("mcxray") is MCXRayPhysics


@pytest.mark.parametrize(
    ("line", "which", "expected"),
    [("Co_Ka", "f", 2.25), ("Zn_Ka", "f", 1.84), ("Co_Ka", "z", 9.49e4), ("Zn_Ka", "z", 9.96e4)],
)
def test_paper_factors_at_80_kev_within_half_a_percent(co_zn, line, which, expected):
    value = getattr(co_zn, which)[line].m_as("b*mol/g")
    assert value == pytest.approx(expected, rel=5e-3)


def test_partial_cross_section_ratio_co_zn_is_110(co_zn):
    co, zn = co_zn.parameters["Co_Ka"], co_zn.parameters["Zn_Ka"]
    ratio = (co.f * co.atomic_weight / (zn.f * zn.atomic_weight)).m_as("")
    assert ratio == pytest.approx(1.10, abs=0.01)


def test_table2_ingredients_at_100_kev_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        factors = MCXRayPhysics().compute(experiment("100 keV", ["Ag_La", "Au_Ma"]))
    ag, au = factors.parameters["Ag_La"], factors.parameters["Au_Ma"]
    assert ag.sigma_ion.m_as("b") == pytest.approx(2440, rel=5e-3)
    assert au.sigma_ion.m_as("b") == pytest.approx(7460, rel=5e-3)
    assert ag.sigma_ela.m_as("b") == pytest.approx(9.90e6, rel=1e-3)
    assert au.sigma_ela.m_as("b") == pytest.approx(1.98e7, rel=1e-3)
    assert (ag.omega, ag.p) == pytest.approx((0.057, 0.816), rel=1e-2)
    assert au.omega == pytest.approx(0.030, rel=1e-2)
    assert au.p == pytest.approx(0.932, abs=1e-3)  # EADL; Table 2 says 0.999 (see docs/physics.md)


def test_sources_name_every_ingredient(co_zn):
    sources = co_zn.parameters["Co_Ka"].sources
    assert set(sources) == {"sigma_ion", "omega", "p", "epsilon", "sigma_ela", "atomic_weight"}
    assert "Bote" in sources["sigma_ion"]
    assert "EADL" in sources["omega"] and "EADL" in sources["p"]
    assert "Browning" in sources["sigma_ela"]
    assert sources["epsilon"] == "experiment eds.efficiency"
    assert "Coursey" in sources["atomic_weight"]
    assert json.loads(co_zn.to_json())["lines"]["Co_Ka"]["sources"] == sources


def test_overrides_replace_one_value_and_say_so():
    exp = experiment("100 keV", ["Au_Ma"])
    plain = MCXRayPhysics().line_parameters("Au_Ma", exp)
    paper = MCXRayPhysics(overrides={"Au_Ma": {"p": 0.999, "sigma_ion": "7460 b"}}).line_parameters("Au_Ma", exp)
    assert paper.p == 0.999 and paper.sources["p"] == "user override"
    assert paper.sigma_ion.m_as("b") == 7460 and paper.sources["sigma_ion"] == "user override"
    assert paper.omega == plain.omega and paper.sources["omega"] == plain.sources["omega"]
    expected = plain.f.m_as("b*mol/g") * 0.999 / plain.p * 7460 / plain.sigma_ion.m_as("b")
    assert paper.f.m_as("b*mol/g") == pytest.approx(expected, rel=1e-12)


def test_efficiency_precedence():
    exp = experiment("80 keV", ["Co_Ka", "Zn_Ka"], efficiency=0.9, efficiency_overrides={"Zn_Ka": 0.8})
    default = MCXRayPhysics().compute(exp).parameters
    assert (default["Co_Ka"].epsilon, default["Zn_Ka"].epsilon) == (0.9, 0.8)
    assert default["Zn_Ka"].sources["epsilon"] == "experiment eds.efficiency_overrides"
    constant = MCXRayPhysics(efficiency=0.7).compute(exp).parameters
    assert (constant["Co_Ka"].epsilon, constant["Zn_Ka"].epsilon) == (0.7, 0.8)
    layered = MCXRayPhysics(efficiency="si3n4-window-sdd").compute(exp).parameters
    assert 0.99 < layered["Co_Ka"].epsilon < 1 and layered["Zn_Ka"].epsilon == 0.8
    assert "layered detector" in layered["Co_Ka"].sources["epsilon"]
    user = MCXRayPhysics(efficiency=0.7, overrides={"Zn_Ka": {"epsilon": 0.5}}).compute(exp).parameters
    assert user["Zn_Ka"].epsilon == 0.5


def test_layered_efficiency_is_intensity_weighted_over_the_family():
    from edstomo_plugins.physics.efficiency import detector

    model = detector({"window": [{"material": "Al", "thickness": "2 µm"}]})
    epsilon = MCXRayPhysics(efficiency=model).line_parameters("Cu_Ka", experiment("80 keV", ["Cu_Ka"])).epsilon
    weights = EADLSource().transition_weights(29, "K", ("KL2", "KL3"))
    by_line = model.efficiency([8.0278, 8.0478])  # xraylib KL2, KL3 energies of Cu (keV)
    assert epsilon == pytest.approx(weights["KL2"] * by_line[0] + weights["KL3"] * by_line[1], rel=1e-4)


def test_cascade_option_raises_the_l3_cross_section():
    exp = experiment("100 keV", ["Ag_La"])
    direct = MCXRayPhysics().line_parameters("Ag_La", exp)
    ck = MCXRayPhysics(cascade="coster-kronig").line_parameters("Ag_La", exp)
    assert ck.sigma_ion / direct.sigma_ion == pytest.approx(1.2700, abs=5e-4)
    assert "coster-kronig" in ck.sources["sigma_ion"]
    full = MCXRayPhysics(cascade="full").line_parameters("Ag_La", exp)
    direct_all = {"L1": 805.9637, "L2": 1139.7036, "L3": 2443.7937, "K": 57.87489}
    expected = effective_cross_sections(47, direct_all, "full")["L3"]
    assert full.sigma_ion.m_as("b") == pytest.approx(expected, rel=1e-5)


def test_xraylib_yields_and_atomic_weights_are_selectable():
    exp = experiment("100 keV", ["Ag_La"])
    params = MCXRayPhysics(yields="xraylib", atomic_weights="xraylib").line_parameters("Ag_La", exp)
    assert params.omega == pytest.approx(0.052)
    assert params.p == pytest.approx(XraylibSource().relative_intensity(47, "L3", ("L3M4", "L3M5")))
    assert params.atomic_weight.m_as("g/mol") == pytest.approx(107.88)  # xraylib rounds; pyxray: 107.8681
    assert "xraylib" in params.sources["omega"] and "xraylib" in params.sources["atomic_weight"]


def test_wentzel_annular_uses_the_experiments_haadf_angles():
    narrow = experiment("80 keV", ["Co_Ka"])
    wide = narrow.model_copy(
        update={"haadf": HAADFDetector(electrons_per_pixel="1 e", inner_angle="50 mrad", outer_angle="611 mrad")}
    )
    model = MCXRayPhysics(elastic="wentzel-annular")
    a, b = (model.line_parameters("Co_Ka", exp).sigma_ela.m_as("b") for exp in (narrow, wide))
    assert b > a > 0
    assert "94-611 mrad" in model.line_parameters("Co_Ka", narrow).sources["sigma_ela"]
    with pytest.raises(ValueError, match="haadf: elastic='wentzel-annular' needs the HAADF angles"):
        model.line_parameters("Co_Ka", experiment("80 keV", ["Co_Ka"], haadf=False))


def test_elastic_none_and_published_browning():
    exp = experiment("100 keV", ["Ag_La"])
    none = MCXRayPhysics(elastic="none").line_parameters("Ag_La", exp)
    assert none.sigma_ela is None and "sigma_ela" not in none.sources
    with pytest.raises(ValueError, match="no elastic cross-section"):
        none.z  # noqa: B018
    published = MCXRayPhysics(elastic="browning-published").line_parameters("Ag_La", exp)
    assert published.sigma_ela.m_as("b") == pytest.approx(0.9825 * 9.90e6, rel=1e-3)


def test_browning_above_100_kev_warns():
    with pytest.warns(ModelRangeWarning, match="Browning"):
        MCXRayPhysics().compute(experiment("200 keV", ["Co_Ka"]))


def test_line_whose_edge_lies_above_the_beam_energy_is_rejected():
    with pytest.raises(ValueError, match=r"line: Au_Ka cannot be excited: the K edge of Au is at 80.\d+ keV"):
        MCXRayPhysics().line_parameters("Au_Ka", experiment("60 keV", ["Au_Ka"]))
    with pytest.raises(ValueError, match=r"Co_Ka cannot be excited.*beam energy 5 keV"):
        MCXRayPhysics().compute(experiment("5 keV", ["Co_Ka"]))


def test_unknown_element_or_line_is_rejected():
    exp = experiment("80 keV", ["Co_Ka"])
    with pytest.raises(LineError, match="unknown element symbol 'Qq'"):
        MCXRayPhysics().line_parameters("Qq_Ka", exp)
    with pytest.raises(LineError, match="unknown family 'Kc'"):
        MCXRayPhysics().line_parameters("Co_Kc", exp)
    with pytest.raises(ValueError, match=r"line: Na_Ll: shell: Z = 11 has no L3 shell in the Bote 2009 table"):
        MCXRayPhysics().line_parameters("Na_Ll", experiment("80 keV", ["Na_Ll"]))


@pytest.mark.parametrize("energy", ["0 keV", "-80 keV"])
def test_non_positive_beam_energy_is_rejected_naming_it(energy):
    with pytest.raises(ValueError, match=f"{energy}.*must be positive"):
        experiment(energy, ["Co_Ka"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"yields": "krause"}, r"option 'yields' = 'krause': a source of ω and p: one of \['eadl', 'xraylib'\]"),
        ({"cascade": "auger"}, r"option 'cascade' = 'auger': expected 'none' \| 'coster-kronig' \| 'full'"),
        ({"elastic": "mott"}, r"option 'elastic' = 'mott': expected 'browning-mcxray' \|"),
        ({"atomic_weights": "iupac"}, r"option 'atomic_weights' = 'iupac': expected 'pyxray' \| 'xraylib'"),
        ({"efficiency": 1.5}, r"efficiency: 1.5 must lie in \(0, 1\]"),
        ({"efficiency": "no-such-detector"}, "unknown detector preset"),
        ({"overrides": {"Co_Ka": {"q": 1}}}, r"unknown keys \['q'\]"),
        ({"overrides": {"Co_Ka": {"p": 1.5}}}, r"overrides\['Co_Ka'\].p: 1.5 must be a number in \(0, 1\]"),
        ({"overrides": {"Co_Kc": {"p": 0.5}}}, "unknown family 'Kc'"),
    ],
)
def test_bad_options_are_rejected_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        MCXRayPhysics(**options)


def test_override_cross_section_needs_a_unit():
    with pytest.raises(UnitError, match="sigma_ion"):
        MCXRayPhysics(overrides={"Co_Ka": {"sigma_ion": 420}})


def test_provenance_records_the_options():
    factors = MCXRayPhysics(efficiency="windowless-sdd", cascade="full").compute(experiment("80 keV", ["Co_Ka"]))
    parameters = factors.provenance[0]["parameters"]
    assert parameters["cascade"] == "full" and parameters["yields"] == "eadl"
    assert parameters["efficiency"]["sensor"] == "Si"
    json.dumps(factors.provenance)


# ----- extending: the two examples of docs/physics.md --------------------------------------------------
class KrauseYieldsEADLRates(RelaxationSource):
    """A new data source: Krause's fluorescence yields with EADL's line intensities."""

    name = "krause-eadl"
    citation = "ω: xraylib (Krause 1979); p: EADL (pyxray)"

    def fluorescence_yield(self, z: int, shell: str) -> float:
        return XraylibSource().fluorescence_yield(z, shell)

    def radiative_rates(self, z: int, shell: str) -> dict[str, float]:
        return EADLSource().radiative_rates(z, shell)


class MyPhysics(MCXRayPhysics):
    """mcxray with one more source of yields."""

    name = "my-physics"
    relaxation_sources: ClassVar[dict[str, RelaxationSource]] = {
        **MCXRayPhysics.relaxation_sources,
        "krause-eadl": KrauseYieldsEADLRates(),
    }


class PaperAuMa(MCXRayPhysics):
    """mcxray, but Au Mα has the relative intensity of the paper's Table 2."""

    name = "mcxray-paper-au-ma"

    def relative_intensity(self, line, experiment):
        if line.name == "Au_Ma":
            return 0.999, "Yuan et al. 2020, Table 2"
        return super().relative_intensity(line, experiment)


def test_extension_by_a_new_data_source():
    registry = Registry()
    registry.register(MyPhysics)
    params = registry.physics("my-physics")(yields="krause-eadl").line_parameters(
        "Ag_La", experiment("100 keV", ["Ag_La"])
    )
    assert params.omega == pytest.approx(0.052)  # Krause
    assert params.p == pytest.approx(0.8159, abs=1e-4)  # EADL
    assert params.sources["omega"] == KrauseYieldsEADLRates.citation
    assert "krause-eadl" not in MCXRayPhysics.relaxation_sources


def test_extension_overriding_one_line_by_subclassing():
    exp = experiment("100 keV", ["Ag_La", "Au_Ma"])
    mine, base = PaperAuMa().compute(exp).parameters, MCXRayPhysics().compute(exp).parameters
    assert mine["Au_Ma"].p == 0.999 and mine["Au_Ma"].sources["p"] == "Yuan et al. 2020, Table 2"
    assert mine["Ag_La"].p == base["Ag_La"].p
