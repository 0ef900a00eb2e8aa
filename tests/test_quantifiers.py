"""Quantifiers eds (eq. 12) and hebt (eq. 18): exact fractions, conservation, thresholds, errors."""

import numpy as np
import pytest
from edstomo import plugins
from edstomo.data import Volume
from edstomo.threshold import esf_threshold
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

LINES = ["Ag_La", "Au_Ma"]


def phantom_maps(experiment, truth, factors, which="f", scale=3.7e4, blur=0.0, noise=0.0, seed=0):
    """Maps X_A = scale · g_A · C_A · ρ of the phantom (g = f or z), optionally blurred (px) and noisy."""
    g = factors.f_array(LINES) if which == "f" else factors.z_array(LINES)
    partial = np.stack([truth.fraction(line) for line in LINES]) * truth.density[None]
    data = scale * g[:, None, None, None] * partial
    if blur:
        data = ndimage.gaussian_filter(data, (0, blur, blur, 0))
    if noise:
        data = data + np.random.default_rng(seed).normal(0, noise * data.max(), data.shape)
    return Volume(data=data, channels=LINES, pixel_size=experiment.scan.pixel_size, experiment=experiment)


def particle(experiment):
    regions = plugins.phantom("core-shell")().regions(experiment)
    return regions["core"] | regions["shell"]


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


@pytest.mark.parametrize(("name", "which"), [("eds", "f"), ("hebt", "z")])
def test_exact_maps_give_the_true_fractions(paper_experiment, paper_truth, paper_factors, name, which):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, which)
    result = plugins.quantifier(name)(paper_factors, threshold=0.0).quantify(maps)
    assert result.elements == ["Ag", "Au"]
    np.testing.assert_allclose(result.weight_fractions, paper_truth.weight_fractions[:2], atol=1e-12)
    np.testing.assert_array_equal(result.mask, paper_truth.density > 0)
    assert result.threshold == 0.0


def test_the_factors_matter(paper_experiment, paper_truth, paper_factors):
    """Maps made with z_A are quantified right by hebt and wrong by eds (f_A ≠ z_A up to a constant)."""
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, "z")
    wrong = plugins.quantifier("eds")(paper_factors, threshold=0.0).quantify(maps)
    deep_shell = (paper_truth.fraction("Ag") > 0.79) & (paper_truth.density > 0)
    f, z = paper_factors.f_array(LINES), paper_factors.z_array(LINES)
    # eq. 12 applied to z-maps: C'_Ag = 0.8 (z/f)_Ag / (0.8 (z/f)_Ag + 0.2 (z/f)_Au)
    ratio = z / f
    expected = 0.8 * ratio[0] / (0.8 * ratio[0] + 0.2 * ratio[1])
    np.testing.assert_allclose(wrong.fraction("Ag")[deep_shell], expected, rtol=1e-9)
    assert abs(expected - 0.8) > 1e-3  # 0.7976: the two factor ratios differ by 1.2 %


@pytest.mark.parametrize("name", ["eds", "hebt"])
def test_fractions_sum_to_one_inside_and_zero_outside(paper_experiment, paper_truth, paper_factors, name):
    which = "f" if name == "eds" else "z"
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, which, blur=1.5, noise=0.05)
    result = plugins.quantifier(name)(paper_factors).quantify(maps)
    total = result.weight_fractions.sum(axis=0)
    np.testing.assert_allclose(total[result.mask], 1.0, atol=1e-12)
    assert np.all(result.weight_fractions[:, ~result.mask] == 0)
    assert np.all((result.weight_fractions >= 0) & (result.weight_fractions <= 1))


def test_esf_mask_of_a_noisy_phantom_is_the_particle(paper_experiment, paper_truth, paper_factors):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, blur=1.5, noise=0.05, seed=3)
    result = plugins.quantifier("eds")(paper_factors).quantify(maps)
    assert dice(result.mask, particle(paper_experiment)) >= 0.95
    # deep in each region the composition is recovered on average
    radius = np.hypot(*np.meshgrid(np.arange(97) - 48, np.arange(97) - 48, indexing="ij"))[..., None] * 1.5
    assert result.fraction("Au")[radius < 24].mean() == pytest.approx(0.8, abs=0.03)
    assert result.fraction("Ag")[(radius > 36) & (radius < 49)].mean() == pytest.approx(0.8, abs=0.03)


def test_given_threshold_equals_the_esf_one_when_the_same(paper_experiment, paper_truth, paper_factors):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, blur=1.5, noise=0.05)
    quantifier = plugins.quantifier("eds")(paper_factors)
    automatic = quantifier.quantify(maps)
    fit = quantifier.esf(maps)
    assert automatic.threshold == pytest.approx(fit.threshold, rel=1e-12)
    assert fit.threshold == pytest.approx(esf_threshold(quantifier.summed(maps)).threshold, rel=1e-12)
    given_ = plugins.quantifier("eds")(paper_factors, threshold=fit.threshold).quantify(maps)
    np.testing.assert_array_equal(given_.mask, automatic.mask)
    np.testing.assert_allclose(given_.weight_fractions, automatic.weight_fractions)
    higher = plugins.quantifier("eds")(paper_factors, threshold=2 * fit.threshold).quantify(maps)
    assert higher.mask.sum() < automatic.mask.sum()
    assert np.all(higher.mask <= automatic.mask)


def test_summed_map_is_the_factor_normalised_sum(paper_experiment, paper_truth, paper_factors):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, scale=2.0)
    summed = plugins.quantifier("eds")(paper_factors).summed(maps)
    np.testing.assert_allclose(summed, 2.0 * paper_truth.density, rtol=1e-12)


def test_negative_voxels_count_as_zero(paper_experiment, paper_factors):
    data = np.zeros((2, 97, 97, 1))
    data[0, 40:50, 40:50] = 1.0
    data[1, 40:50, 40:50] = -5.0
    maps = Volume(data=data, channels=LINES, pixel_size="1.5 nm")
    result = plugins.quantifier("eds")(paper_factors, threshold=0.0).quantify(maps)
    assert np.all(result.fraction("Ag")[40:50, 40:50] == 1.0)
    assert np.all(result.fraction("Au") == 0.0)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-6, 1e6))
def test_common_scale_of_the_maps_cancels(paper_experiment, paper_truth, paper_factors, scale):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, blur=1.5, noise=0.05)
    quantifier = plugins.quantifier("eds")(paper_factors)
    base = quantifier.quantify(maps)
    scaled = quantifier.quantify(maps.replace(data=scale * maps.data))
    assert scaled.threshold == pytest.approx(scale * base.threshold, rel=1e-6)
    np.testing.assert_array_equal(scaled.mask, base.mask)
    np.testing.assert_allclose(scaled.weight_fractions, base.weight_fractions, atol=1e-9)


def test_provenance_records_the_threshold(paper_experiment, paper_truth, paper_factors):
    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, which="z", blur=1.5, noise=0.05)
    result = plugins.quantifier("hebt")(paper_factors).quantify(maps)
    step = result.provenance[-1]
    assert step["plugin"] == "hebt" and step["parameters"]["threshold_method"] == "esf"
    assert step["parameters"]["threshold"] == pytest.approx(result.threshold)
    assert step["parameters"]["factors"]["Ag_La"] == pytest.approx(paper_factors.z_array(["Ag_La"])[0])
    assert result.experiment is paper_experiment


def test_lines_without_factors_are_an_error(paper_factors):
    maps = Volume(data=np.ones((2, 5, 5, 1)), channels=["Ag_La", "Cu_Ka"], pixel_size="1.5 nm")
    with pytest.raises(ValueError, match=r"lines \['Cu_Ka'\] have no physics factors"):
        plugins.quantifier("eds")(paper_factors, threshold=0.0).quantify(maps)


def test_haadf_channel_is_an_error(paper_factors):
    maps = Volume(data=np.ones((2, 5, 5, 1)), channels=["HAADF", "Ag_La"], pixel_size="1.5 nm")
    with pytest.raises(ValueError, match="HAADF"):
        plugins.quantifier("eds")(paper_factors, threshold=0.0).quantify(maps)


def test_hebt_needs_elastic_cross_sections(paper_experiment):
    values = {
        "Ag_La": {"sigma_ion": "2440 b", "omega": 0.057, "p": 0.816},
        "Au_Ma": {"sigma_ion": "7460 b", "omega": 0.030, "p": 0.999},
    }
    factors = plugins.physics("table")(dataset=None, values=values).compute(paper_experiment)
    maps = Volume(data=np.ones((2, 5, 5, 1)), channels=LINES, pixel_size="1.5 nm")
    with pytest.raises(ValueError, match="elastic cross-section"):
        plugins.quantifier("hebt")(factors, threshold=0.0).quantify(maps)
    plugins.quantifier("eds")(factors, threshold=0.0).quantify(maps)  # f_A needs no σ_ela


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": -1.0}, r"'threshold' = -1.0: expected 'esf' \| float \(>= 0\)"),
        (
            {"threshold": "otsu"},
            r"'threshold' = 'otsu': text is not a number \(nor 'esf'\); expected 'esf' \| float \(>= 0\)",
        ),
        ({"threshold": float("nan")}, r"'threshold' = nan: expected 'esf' \| float"),
        ({"threshold": True}, r"'threshold' = True: a boolean is not accepted here"),
        ({"trials": 3}, r"'trials' = 3: expected int \(>= 8\)"),
    ],
)
def test_bad_options_are_named(paper_factors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plugins.quantifier("eds")(paper_factors, **kwargs)


def test_not_a_volume_is_a_type_error(paper_factors):
    with pytest.raises(TypeError, match="maps: expected a Volume"):
        plugins.quantifier("eds")(paper_factors).quantify(np.ones((2, 5, 5, 1)))


def test_quantified_in_slices_equals_the_whole_and_refuses_the_same_channels(
    paper_experiment, paper_truth, paper_factors
):
    """The slice-by-slice quantification of the pipeline gives the whole volume's fractions, and refuses what
    ``quantify`` refuses (two lines of one element) with the same message."""
    from edstomo_microscope.slicewise import quantify_in_slices

    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, blur=1.5, noise=0.05)
    maps = maps.replace(data=np.repeat(maps.data, 3, axis=-1))  # 3 slices, quantified one at a time
    quantifier = plugins.quantifier("eds")(paper_factors)
    whole = quantifier.quantify(maps)
    pieces = quantify_in_slices(quantifier, maps, chunk_slices=1)
    np.testing.assert_array_equal(pieces.weight_fractions, whole.weight_fractions)
    assert pieces.threshold == whole.threshold
    twice = maps.replace(channels=["Ag_La", "Ag_Ka"])
    for quantify in (quantifier.quantify, lambda volume: quantify_in_slices(quantifier, volume, chunk_slices=1)):
        with pytest.raises(ValueError, match="two lines of one element"):
            quantify(twice)


@pytest.mark.parametrize("keep", [True, False])
def test_quantified_from_a_file_with_the_summed_map_in_a_temporary_file(
    paper_experiment, paper_truth, paper_factors, tmp_path, monkeypatch, keep
):
    """A volume in a file that is not kept in memory: S goes to a temporary file beside the maps (removed after),
    and the maps, mask and threshold are those of the whole volume in memory, bit for bit."""
    from edstomo.stored import Stored
    from edstomo_microscope import slicewise

    maps = phantom_maps(paper_experiment, paper_truth, paper_factors, blur=1.5, noise=0.05)
    maps = maps.replace(data=np.repeat(maps.data, 5, axis=-1) * np.linspace(0.8, 1.2, 5, dtype=np.float32))
    maps.save(tmp_path / "volume.h5")
    quantifier = plugins.quantifier("eds")(paper_factors)
    whole = quantifier.quantify(maps)
    seen = []
    decide = type(quantifier).decide

    def spy(self, summed):
        seen.append(type(summed))
        return decide(self, summed)

    monkeypatch.setattr(type(quantifier), "decide", spy)
    monkeypatch.setattr(slicewise, "KEEP_MAX", 2**40 if keep else 0)
    (tmp_path / "out").mkdir()
    result = slicewise.quantify_in_slices(
        quantifier, Stored(tmp_path / "volume.h5"), chunk_slices=2, path=tmp_path / "out" / "maps.h5"
    ).load()
    assert seen == [np.ndarray if keep else slicewise._SummedFile]
    np.testing.assert_array_equal(result.weight_fractions, whole.weight_fractions)
    np.testing.assert_array_equal(result.mask, whole.mask)
    assert result.threshold == whole.threshold
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["maps.h5"]  # the temporary S is gone
