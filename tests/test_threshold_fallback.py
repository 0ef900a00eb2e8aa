"""Otsu's threshold as the fallback of the ESF threshold (edstomo.threshold) and of the ratio quantifiers."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from edstomo import plugins
from edstomo.data import Volume
from edstomo.threshold import NoPlateauError, esf_threshold, otsu_threshold

threshold_otsu = pytest.importorskip("skimage.filters").threshold_otsu

LINES = ["Ag_La", "Au_Ma"]


def no_plateau(seed=5, size=5000):
    """One population only: V(t) falls steadily, without a plateau between two steps."""
    return np.random.default_rng(seed).uniform(0, 1, size)


def two_populations(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 0.05, 6000), rng.normal(1, 0.05, 3000)])


def test_without_a_fallback_a_curve_without_plateau_raises_a_clear_error():
    with pytest.raises(NoPlateauError, match=r"no plateau.*give the threshold explicitly, or fallback='otsu'"):
        esf_threshold(no_plateau())
    assert issubclass(NoPlateauError, ValueError)  # callers catching ValueError keep working


def test_with_the_otsu_fallback_the_threshold_is_otsus_and_says_why():
    values = no_plateau()
    fit = esf_threshold(values, fallback="otsu")
    assert fit.method == "otsu"
    assert fit.threshold == threshold_otsu(values)
    assert "no plateau" in fit.note and "Otsu" in fit.note
    assert len(fit.centres) == 2 and fit.volumes.size == fit.trials.size  # the failed fit stays inspectable


def test_the_fallback_is_unused_when_there_is_a_plateau():
    values = two_populations()
    plain, with_fallback = esf_threshold(values), esf_threshold(values, fallback="otsu")
    assert with_fallback.threshold == plain.threshold
    assert (plain.method, plain.note) == (with_fallback.method, with_fallback.note) == ("esf", "")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bins", [16, 256])
def test_numpy_otsu_equals_scikit_image(monkeypatch, seed, bins):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.gamma(2.0, 1.0, 3000), rng.normal(8.0 + seed, 1.0, 1000)]).reshape(20, 50, 4)
    expected = threshold_otsu(values.ravel(), nbins=bins)
    assert otsu_threshold(values, bins) == expected
    monkeypatch.setitem(sys.modules, "skimage.filters", None)  # as if scikit-image were not installed
    assert otsu_threshold(values, bins) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: esf_threshold(no_plateau(), fallback="median"), r"fallback: 'median' must be None .* \('otsu',\)"),
        (lambda: esf_threshold(np.ones(50), fallback="otsu"), "constant"),
        (lambda: otsu_threshold(np.ones(50)), "constant"),
        (lambda: otsu_threshold(no_plateau(), bins=1), r"bins: 1 must be an integer >= 2"),
        (lambda: otsu_threshold([0.0, np.inf]), "infinite"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_no_plateau_error_survives_pickling():
    error = pickle.loads(pickle.dumps(NoPlateauError("one step only")))
    assert isinstance(error, NoPlateauError) and error.reason == "one step only"
    assert str(error) == str(NoPlateauError("one step only"))


# ----------------------------------------------------------------- quantifiers
def flat_maps() -> Volume:
    """Maps whose summed map is one broad population (no ESF plateau)."""
    data = np.random.default_rng(3).uniform(0.0, 1.0, (2, 30, 30, 3))
    return Volume(data=data, channels=LINES, pixel_size="1.5 nm")


@pytest.mark.parametrize("name", ["eds", "hebt"])
def test_quantifier_falls_back_to_otsu_and_records_it(paper_factors, name):
    maps = flat_maps()
    quantifier = plugins.quantifier(name)(paper_factors, fallback="otsu")
    result = quantifier.quantify(maps)
    summed = quantifier.summed(maps)
    assert result.threshold == threshold_otsu(summed.ravel())
    np.testing.assert_array_equal(result.mask, summed > result.threshold)
    np.testing.assert_allclose(result.weight_fractions.sum(axis=0)[result.mask], 1.0)
    step = result.provenance[-1]["parameters"]
    assert step["threshold_method"] == "otsu" and step["fallback"] == "otsu"
    assert "no plateau" in step["threshold_note"] and step["threshold"] == result.threshold
    assert quantifier.esf(maps).method == "otsu"


def test_quantifier_without_fallback_raises(paper_factors):
    with pytest.raises(ValueError, match="no plateau"):
        plugins.quantifier("eds")(paper_factors).quantify(flat_maps())


def test_quantifier_records_a_given_threshold_and_checks_the_fallback(paper_factors):
    result = plugins.quantifier("eds")(paper_factors, threshold=0.0, fallback="otsu").quantify(flat_maps())
    step = result.provenance[-1]["parameters"]
    assert (step["threshold_method"], step["threshold_note"], result.threshold) == ("given", "", 0.0)
    with pytest.raises(ValueError, match=r"'fallback' = 'li': expected 'otsu' \| None"):
        plugins.quantifier("hebt")(paper_factors, fallback="li")
