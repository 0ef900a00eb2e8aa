"""ESF threshold (edstomo.threshold): curve, fit, refinement stability, equivariance, errors."""

import numpy as np
import pytest
from edstomo import plugins
from edstomo.threshold import esf_threshold, trial_thresholds, volume_curve
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage


def test_volume_curve_counts_values_above_each_threshold():
    values = np.array([0.0, 1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(volume_curve(values, [-1.0, 0.0, 0.5, 2.5, 3.0]), [5, 4, 4, 2, 0])


def test_trial_thresholds_span_the_values():
    trials = trial_thresholds(np.array([[2.0, -1.0], [5.0, 0.0]]), 10)
    assert trials[0] == -1.0 and trials[-1] == 5.0 and trials.size == 10


def two_populations(seed=0, background=6000, particle=3000, level=1.0, noise=0.05):
    """A background around 0 and a particle around ``level``, both with Gaussian noise."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, noise, background), rng.normal(level, noise, particle)])
    truth = np.concatenate([np.zeros(background, bool), np.ones(particle, bool)])
    return values, truth


def test_threshold_separates_two_populations_in_the_plateau():
    values, truth = two_populations()
    fit = esf_threshold(values)
    assert 0.25 < fit.threshold < 0.75
    np.testing.assert_array_equal(values > fit.threshold, truth)
    # the fitted steps sit on the populations: heights (voxels), centres, widths
    np.testing.assert_allclose(fit.amplitudes, [6000, 3000], rtol=0.02)
    np.testing.assert_allclose(fit.centres, [0.0, 1.0], atol=0.01)
    np.testing.assert_allclose(fit.widths, [0.05, 0.05], rtol=0.1)
    # the fitted curve follows the counted one and its slope is flattest at the threshold
    assert np.max(np.abs(fit.fitted - fit.volumes)) < 0.01 * values.size
    t = np.linspace(fit.centres[0], fit.centres[1], 501)
    assert np.all(np.abs(fit.slope(t)) >= np.abs(fit.slope(np.array([fit.threshold]))) - 1e-9)
    assert np.all(fit.slope(t) <= 0)


def test_symmetric_populations_give_the_midpoint():
    values, _ = two_populations(background=4000, particle=4000, noise=0.08)
    assert esf_threshold(values).threshold == pytest.approx(0.5, abs=0.02)


def blurred_noisy_phantom(paper_experiment, paper_truth, seed=1):
    """A summed map like a reconstruction's: partial densities blurred by 1.5 px plus 5 % Gaussian noise."""
    rng = np.random.default_rng(seed)
    density = ndimage.gaussian_filter(paper_truth.density[..., 0], 1.5)
    summed = density + rng.normal(0, 0.05 * density.max(), density.shape)
    regions = plugins.phantom("core-shell")().regions(paper_experiment)
    return summed, (regions["core"] | regions["shell"])[..., 0]


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_esf_mask_of_a_noisy_phantom_matches_the_particle(paper_experiment, paper_truth):
    summed, particle = blurred_noisy_phantom(paper_experiment, paper_truth)
    fit = esf_threshold(summed)
    assert dice(summed > fit.threshold, particle) >= 0.95


@pytest.mark.parametrize("seed", [1, 2])
def test_refining_the_trial_thresholds_does_not_move_the_threshold(paper_experiment, paper_truth, seed):
    summed, _ = blurred_noisy_phantom(paper_experiment, paper_truth, seed)
    span = summed.max() - summed.min()
    thresholds = [esf_threshold(summed, n).threshold for n in (50, 100, 200, 400, 1600)]
    assert np.ptp(thresholds) < 0.01 * span
    masks = [summed > t for t in thresholds]
    assert min(dice(m, masks[-1]) for m in masks) > 0.995


def test_explicit_trials_equal_the_same_count():
    values, _ = two_populations(seed=3)
    by_count = esf_threshold(values, 120)
    by_list = esf_threshold(values, trial_thresholds(values, 120))
    assert by_list.threshold == pytest.approx(by_count.threshold, rel=1e-9)
    np.testing.assert_array_equal(by_list.volumes, by_count.volumes)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(1e-3, 1e4), offset=st.floats(-10, 10))
def test_threshold_follows_a_change_of_units(scale, offset):
    values, _ = two_populations(seed=4)
    base = esf_threshold(values).threshold
    moved = esf_threshold(scale * values + offset).threshold
    assert moved == pytest.approx(scale * base + offset, rel=1e-4, abs=1e-4 * scale)


@pytest.mark.parametrize(
    ("summed", "trials", "match"),
    [
        (np.ones(50), 200, "constant"),
        (np.array([0.0, np.nan, 1.0]), 200, "NaN"),
        (np.array([]), 200, "empty"),
        (np.arange(50.0), 4, r"trials: 4 must be an integer >= 8"),
        (np.arange(50.0), [0, 1, 2, 3, 4, 5, 7, 6], "strictly increasing"),
        (np.arange(50.0), [0, 1, 2], "strictly increasing"),
    ],
)
def test_bad_input_is_named(summed, trials, match):
    with pytest.raises(ValueError, match=match):
        esf_threshold(summed, trials)


def test_a_single_population_has_no_plateau():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="plateau"):
        esf_threshold(rng.uniform(0, 1, 5000))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=400),
    block=st.integers(1, 40),
    pick=st.integers(0, 10**6),
)
def test_blockwise_statistics_equal_numpy_on_the_whole(values, block, pick):
    """Medians, spreads and V(t) taken a block at a time (narrowing rounds forced by tiny blocks) are numpy's."""
    import edstomo.threshold as threshold

    values = np.asarray(values, dtype=float)
    split = float(values[pick % values.size])
    saved, threshold._BLOCK = threshold._BLOCK, block
    try:
        for lower in (True, False):
            part = values[values <= split] if lower else values[values > split]
            size, median, spread = threshold._part_statistics(threshold.SummedValues(values), split, lower)
            assert size == part.size
            if part.size:
                assert median == np.median(part)
                assert spread == pytest.approx(part.std(), rel=1e-9, abs=1e-9)
        trials = np.array([split, values.min() - 1.0, *values[:3], values.max()])
        np.testing.assert_array_equal(volume_curve(values, trials), [(values > t).sum() for t in trials])
    finally:
        threshold._BLOCK = saved


class _SlicesOf:
    """S behind a reader of slice ranges, recording the largest read (values)."""

    def __init__(self, array):
        self.array, self.shape, self.largest = array, array.shape, 0

    def read(self, start, stop):
        piece = self.array[..., start:stop]
        self.largest = max(self.largest, piece.size)
        return piece


@pytest.mark.parametrize("block", [7, 64, 2**20])
def test_a_reader_of_slices_gives_the_arrays_threshold_bit_for_bit(block):
    """S in pieces (e.g. in a file) and in memory: the same ESF fit, Otsu and counts, never read whole."""
    import edstomo.threshold as threshold
    from edstomo.threshold import SummedValues, count_above, otsu_threshold

    rng = np.random.default_rng(11)
    z, x, y = np.meshgrid(*(np.arange(n) - n / 2 for n in (12, 10, 9)), indexing="ij")
    summed = np.where(x**2 + y**2 + z**2 < 16, 3.0, 0.2) + rng.normal(0, 0.05, (12, 10, 9))
    saved, threshold._BLOCK = threshold._BLOCK, block
    try:
        reader = _SlicesOf(summed)
        by_pieces, whole = esf_threshold(reader), esf_threshold(summed)
        assert by_pieces.threshold == whole.threshold and by_pieces.centres == whole.centres
        np.testing.assert_array_equal(by_pieces.volumes, whole.volumes)
        assert otsu_threshold(_SlicesOf(summed)) == otsu_threshold(summed) == otsu_threshold(summed.ravel())
        assert count_above(reader, whole.threshold) == int((summed > whole.threshold).sum())
        assert reader.largest <= max(block, 12 * 10)  # a block of whole slices, never S whole
        values = SummedValues(reader)
        assert (values.min, values.max, values.size) == (summed.min(), summed.max(), summed.size)
        assert sorted(np.concatenate(list(values.blocks()))) == sorted(summed.ravel())
    finally:
        threshold._BLOCK = saved
    with pytest.raises(ValueError, match="1 NaN"):
        summed[3, 2, 1] = np.nan
        SummedValues(_SlicesOf(summed))
