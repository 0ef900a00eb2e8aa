"""Bootstrap error bars (edstomo.uncertainty) and CompositionMaps.uncertainty: spread against true noise, files."""

from __future__ import annotations

import numpy as np
import pytest
from edstomo import CompositionMaps, Experiment, load
from edstomo.errors import InputError
from edstomo.preprocessing import gaussian_filter
from edstomo.registry import plugins
from edstomo.study import interior
from edstomo.testing import solver_test_series
from edstomo.uncertainty import bootstrap, format_fraction, region_means


def FILTER(series):
    return gaussian_filter(series, 0.8)


@pytest.fixture(scope="module")
def small_phantom():
    """The paper's phantom at the low dose on a coarse grid: 49 positions of 3 nm, 16 tilts."""
    experiment = Experiment(
        name="coarse-phantom",
        beam_energy="100 keV",
        lines=["Ag_La", "Au_Ma"],
        tilts={"start": "-75 deg", "stop": "75 deg", "step": "10 deg"},
        scan={"positions": 49, "pixel_size": "3 nm"},
        haadf={"electrons_per_pixel": "1e5 e", "inner_angle": "94 mrad", "outer_angle": "611 mrad"},
        eds={"probe_current": "3.3 pA", "dwell_time": "0.5 s", "solid_angle": "0.7 sr"},
    )
    factors = plugins.physics("table")().compute(experiment)
    phantom = plugins.phantom("core-shell")()
    forward = plugins.forward("thin-film")(experiment, factors)
    return experiment, factors, phantom.generate(experiment), phantom.regions(experiment), forward


def _bootstrap(small_phantom, seed: int, replicas: int = 6, noise_seed: int = 0):
    experiment, factors, truth, _, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=noise_seed).select(list(experiment.lines))
    solver = plugins.solver("sirt")(iterations=20)
    return bootstrap(
        solver, series, plugins.quantifier("eds")(factors), replicas=replicas, seed=seed, preprocess=FILTER
    )


def test_same_seed_same_uncertainty_and_another_seed_another(small_phantom):
    first, again, other = (_bootstrap(small_phantom, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.maps.uncertainty, again.maps.uncertainty)
    np.testing.assert_array_equal(first.replicas, again.replicas)
    assert not np.array_equal(first.maps.uncertainty, other.maps.uncertainty)
    assert first.maps.provenance[-1]["action"] == "bootstrap"
    assert first.maps.provenance[-1]["parameters"]["replicas"] == 6
    assert first.maps.provenance[-1]["parameters"]["phases"] == 2  # core and shell found by k-means
    expected = np.sqrt(first.sd**2 + first.bias**2 + first.model_bias**2)
    np.testing.assert_allclose(first.maps.uncertainty, expected)


def test_bootstrap_spread_matches_the_spread_over_true_noise_realisations(small_phantom):
    """The replicas' region-mean spread agrees with that of independent simulations (an independent check)."""
    experiment, factors, truth, regions, forward = small_phantom
    shell = interior(regions["shell"], 2.0)
    quantifier = plugins.quantifier("eds")(factors)
    solver = plugins.solver("sirt")(iterations=20)
    truths = []
    for seed in range(12):
        series = forward.simulate(truth, noise="poisson", seed=100 + seed).select(list(experiment.lines))
        truths.append(quantifier.quantify(solver.solve(FILTER(series))).fraction("Ag")[shell].mean())
    estimate = _bootstrap(small_phantom, seed=1, replicas=12)
    boot = estimate.region_means({"shell": shell})["shell"]["Ag"]
    true_sd = float(np.std(truths, ddof=1))
    assert 0.5 * true_sd < boot.sd < 2.0 * true_sd  # 12 vs 12 samples: the ratio of sds is within 2 at >99 %
    voxel_true = np.std(
        [quantifier.quantify(solver.solve(FILTER(forward.simulate(truth, noise="poisson", seed=200 + s)
         .select(list(experiment.lines))))).fraction("Ag")[shell] for s in range(8)], axis=0, ddof=1
    ).mean()  # fmt: skip
    assert 0.6 * voxel_true < estimate.sd[estimate.maps.elements.index("Ag")][shell].mean() < 1.6 * voxel_true


def test_region_means_intervals_and_formatting(small_phantom):
    estimate = _bootstrap(small_phantom, seed=2)
    mask = estimate.maps.particle_mask
    means = region_means(estimate.maps, estimate.replicas, {"particle": mask, "nothing": np.zeros_like(mask)})
    assert list(means) == ["particle"]  # an empty region is left out
    ag, au = means["particle"]["Ag"], means["particle"]["Au"]
    assert ag.mean + au.mean == pytest.approx(1.0, abs=4 * 2**-24)  # float32 maps
    assert ag.low < ag.mean < ag.high and ag.high - ag.mean == pytest.approx(1.959963984540054 * ag.error)
    assert ag.model_bias == 0.0  # no phase model given to region_means here
    assert ag.error == pytest.approx(np.hypot(ag.sd, ag.bias))
    with_model = estimate.region_means({"particle": mask})["particle"]["Ag"]
    assert with_model.error == pytest.approx(np.sqrt(ag.sd**2 + ag.bias**2 + with_model.model_bias**2))
    assert format_fraction("Fe", 0.142, 0.008) == "Fe 14.2 ± 0.8 wt%"
    assert format_fraction("Fe", 0.142) == "Fe 14.2 wt%"
    with pytest.raises(InputError, match="regions: 'bad' has shape"):
        region_means(estimate.maps, estimate.replicas, {"bad": np.ones((2, 2, 1), bool)})


@pytest.mark.parametrize("replicas", [1, 0, -3, 2.5, True])
def test_fewer_than_two_replicas_are_refused(small_phantom, replicas):
    experiment, factors, truth, _, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=0).select(list(experiment.lines))
    with pytest.raises(InputError, match=r"replicas: .* must be an integer >= 2"):
        bootstrap(plugins.solver("sirt")(iterations=3), series, plugins.quantifier("eds")(factors), replicas=replicas)


def test_auto_options_must_be_chosen_before_the_bootstrap(small_phantom):
    experiment, factors, truth, _, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=0).select(list(experiment.lines))
    with pytest.raises(InputError, match=r"still has options \['iterations'\] set to 'auto'"):
        bootstrap(plugins.solver("sirt")(iterations="auto"), series, plugins.quantifier("eds")(factors))


def test_hebt_replicas_refit_their_ratios_in_one_batch_solve(small_phantom):
    _, factors, truth, _, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=0)
    estimate = bootstrap(
        plugins.solver("hebt-sirt")(iterations=20),
        series,
        plugins.quantifier("hebt")(factors),
        replicas=4,
        seed=0,
        preprocess=FILTER,
    )
    ratios = [fit["ratios"] for fit in estimate.fitted]
    assert len(ratios) == 4 and len({r["Ag_La"] for r in ratios}) == 4  # fitted to each replica
    scatter = estimate.ratio_scatter()
    assert 0 < scatter["Ag_La"]["relative_sd"] < 0.1


def test_uncertainty_is_saved_and_loaded_and_checked(tmp_path, small_phantom):
    estimate = _bootstrap(small_phantom, seed=0)
    path = estimate.maps.save(tmp_path / "maps.h5")
    back = load(path)
    np.testing.assert_array_equal(back.uncertainty, estimate.maps.uncertainty)
    plain = estimate.maps.replace(uncertainty=None)
    assert load(plain.save(tmp_path / "plain.h5")).uncertainty is None
    fractions = estimate.maps.weight_fractions
    with pytest.raises(ValueError, match="weight_fraction_uncertainty: shape"):
        CompositionMaps(fractions, estimate.maps.elements, "3 nm", uncertainty=np.zeros(fractions.shape[1:]))
    with pytest.raises(ValueError, match="weight_fraction_uncertainty: contains negative values"):
        CompositionMaps(fractions, estimate.maps.elements, "3 nm", uncertainty=-np.ones_like(fractions))


def test_absorption_corrected_counts_are_redrawn_as_measured_then_divided(small_phantom):
    """With ray transmissions t the counts drawn are Poisson(t μ̂) (integers), divided by t after ``replicate``;
    with t = 1/4 everywhere the noise of the weight fractions doubles (variance μ̂/t)."""
    experiment, factors, truth, regions, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=0).select(list(experiment.lines))
    series = series.replace(data=16 * series.data)  # a dose at which a quarter of it still quantifies
    shape = series.data[0].shape
    quarter = {line: np.full(shape, 0.25) for line in series.channels}
    drawn, divided = [], []

    def capture(replica):
        drawn.append(replica.data.copy())
        return replica

    def seen(replica):
        divided.append(replica.data.copy())
        return FILTER(replica)

    solver, quantifier = plugins.solver("sirt")(iterations=20), plugins.quantifier("eds")(factors)
    common = {"replicas": 6, "seed": 5}
    absorbed = bootstrap(solver, series, quantifier, replicate=capture, preprocess=seen, transmission=quarter, **common)
    plain = bootstrap(solver, series, quantifier, preprocess=FILTER, **common)
    assert absorbed.record["transmission"].startswith("fixed") and plain.record["transmission"] == "none"
    replicas = [i for i, d in enumerate(drawn) if np.array_equal(d, np.round(d))]  # the phase model is not counts
    assert len(replicas) == 6 and len(drawn) == 7
    counts = np.stack([drawn[i] for i in replicas])
    # divided after replicate; preprocess saw the data first, then every capture in the same order
    np.testing.assert_allclose(np.stack([divided[i + 1] for i in replicas]), 4 * counts)
    assert 0.2 < counts.sum() / (6 * series.data.sum()) < 0.3  # a quarter of the counts
    np.testing.assert_array_equal(absorbed.maps.weight_fractions, plain.maps.weight_fractions)  # same estimate
    shell = interior(regions["shell"], 2.0)
    ag = absorbed.maps.elements.index("Ag")
    ratio = absorbed.sd[ag][shell].mean() / plain.sd[ag][shell].mean()
    assert 1.6 < ratio < 2.5  # sqrt(1/t) = 2


def test_bad_transmissions_are_refused(small_phantom):
    experiment, factors, truth, _, forward = small_phantom
    series = forward.simulate(truth, noise="poisson", seed=0).select(list(experiment.lines))
    shape = series.data[0].shape
    solver, quantifier = plugins.solver("sirt")(iterations=3), plugins.quantifier("eds")(factors)
    cases = [
        ({"HAADF": np.ones(shape)}, r"transmission: 'HAADF' is not a redrawn channel"),
        ({"Ag_La": np.ones(shape[:2])}, r"transmission: 'Ag_La' has shape .* expected \(tilts, positions, slices\)"),
        ({"Ag_La": np.zeros(shape)}, r"transmission: 'Ag_La' has values in \[0, 0\]; .* in \(0, 1\]"),
        ({"Ag_La": np.full(shape, 1.5)}, r"transmissions are fractions in \(0, 1\]"),
    ]
    for transmission, message in cases:
        with pytest.raises(InputError, match=message):
            bootstrap(solver, series, quantifier, transmission=transmission)


def test_replicas_solved_in_groups_give_the_same_uncertainty(small_phantom, monkeypatch):
    """Replicas solved a few columns at a time (a large series) give what one batch solve gives; a run that
    cannot fit in the memory available is refused before it starts."""
    import edstomo.resources
    import edstomo.uncertainty
    from edstomo.resources import ResourceError

    whole = _bootstrap(small_phantom, seed=3, replicas=5)
    monkeypatch.setattr(edstomo.uncertainty, "BATCH_BYTES", 1)  # one column per solve
    grouped = _bootstrap(small_phantom, seed=3, replicas=5)
    assert whole.record["columns_per_solve"] == 6 and grouped.record["columns_per_solve"] == 1
    np.testing.assert_allclose(grouped.replicas, whole.replicas, rtol=0, atol=1e-6)
    np.testing.assert_allclose(grouped.maps.uncertainty, whole.maps.uncertainty, rtol=0, atol=1e-6)
    one_solve = sum(edstomo.resources.solve_bytes(2, 16, 49, 1).values())  # the estimate's solve fits, no more
    monkeypatch.setattr(edstomo.resources, "available_memory", lambda: one_solve)
    monkeypatch.delenv(edstomo.resources.ALLOW_ENV, raising=False)
    with pytest.raises(ResourceError, match=r"uncertainty: 6 batch columns of solver 'sirt' .* needs about"):
        _bootstrap(small_phantom, seed=3, replicas=5)


def test_region_means_are_compositions_of_the_voxels_each_replica_segments(small_phantom):
    """A voxel a replica (or the phase model) leaves out of its particle has no composition: it does not pull
    the region mean towards 0, and in a two-element particle Ag and Au get the same error bar (they sum to 1)."""
    fractions = np.zeros((2, 4, 4, 1))
    fractions[0, :, :2], fractions[1, :, :2] = 0.6, 0.4  # the particle: the left half
    maps = CompositionMaps(fractions, ["Ag", "Au"], "3 nm")
    region = fractions.sum(axis=0) > 0
    replicas = np.stack([fractions, fractions, fractions]).astype(np.float32)
    replicas[1, :, 0, 0] = 0.0  # replica 1 leaves one voxel out of its particle
    replicas[2, :, 1, 1, 0] = [0.7, 0.3]  # replica 2 is richer in Ag in one voxel
    model_bias, model_mask = np.zeros_like(fractions), region.copy()
    model_bias[:, 0, 1], model_mask[0, 1] = -0.5, False  # the phase model loses one voxel
    means = region_means(maps, replicas, {"particle": region}, model_bias, model_mask)["particle"]
    ag, au = means["Ag"], means["Au"]
    expected = np.array([0.6, 0.6, (7 * 0.6 + 0.7) / 8])  # replica 1: the mean of its 7 voxels, still 0.6
    assert ag.sd == pytest.approx(np.std(expected, ddof=1), rel=1e-5)  # replicas are kept as float32
    assert ag.bias == pytest.approx(expected.mean() - 0.6, rel=1e-4)
    assert ag.model_bias == 0.0 and au.model_bias == 0.0  # the lost voxel is no composition error
    assert ag.error == pytest.approx(au.error, rel=1e-5) and ag.mean + au.mean == pytest.approx(1.0)
    estimate = _bootstrap(small_phantom, seed=2)  # on the phantom: Ag and Au error bars of the particle agree
    particle = estimate.region_means({"particle": estimate.maps.particle_mask})["particle"]
    assert particle["Ag"].error == pytest.approx(particle["Au"].error, rel=1e-5)


def test_replica_groups_count_the_solver_s_work_arrays():
    """A PDHG solver holds 4 sinogram- and 4 volume-sized work arrays (2-D TV) where SIRT holds 3 and none: its
    replicas go in smaller groups, each column costing data + work sinograms + estimate, copy, work volumes +
    the column's volume cut from the batch (float32 solver arrays, float64 data)."""
    from edstomo.uncertainty import BATCH_BYTES, group_size

    series = solver_test_series(slices=2).select(["Ag_La", "Au_Ma"])
    channels, tilts, positions, slices = 2, series.n_tilts, series.n_positions, series.n_slices
    sinogram, volume = channels * tilts * positions * slices, channels * positions**2 * slices

    def column(work_sinograms: int, work_volumes: int) -> int:
        return 8 * sinogram + 4 * (work_sinograms * sinogram + (3 + work_volumes) * volume)

    sirt, pdhg = plugins.solver("sirt")(), plugins.solver("poisson-tv")()
    assert pdhg.work_arrays() == (4.0, 4.0) and sirt.work_arrays() == (3.0, 0.0)
    many = 10**9
    assert group_size(sirt, series, channels, many, 0) == BATCH_BYTES // column(3, 0)
    assert group_size(pdhg, series, channels, many, 0) == BATCH_BYTES // column(4, 4)
    assert group_size(pdhg, series, channels, many, 0) < group_size(sirt, series, channels, many, 0)
    assert group_size(pdhg, series, channels, 3, 0) == 3  # never more columns than asked
