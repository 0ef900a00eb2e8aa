"""Family fitting of spectrum images (linefit, spectrum_model): counts, calibration, evidence, bad input.

The spectra are built here from the same family shapes with known amplitudes,
a known continuum and Poisson noise, so the expected counts are known; the
per-pixel solution is compared with HyperSpy's own bounded model fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("hyperspy")
exspy = pytest.importorskip("exspy")

from edstomo.errors import InputError  # noqa: E402
from edstomo_microscope.families import element_families  # noqa: E402
from edstomo_microscope.linefit import SpectrumCube, fit_series, fit_tilt, pixel_model  # noqa: E402
from edstomo_microscope.loading import load_tilt_series  # noqa: E402
from edstomo_microscope.metadata import MetadataWarning  # noqa: E402

CHANNELS, STEP = 1000, 0.01
BEAM = 80.0
LINES = ["Co_Ka", "Ni_Ka", "Zn_Ka"]


def k_family(element):
    return next(f for f in element_families(element, BEAM) if f.shell == "K")


def continuum_shape(energies):
    e = np.maximum(energies, 1e-3)
    shape = np.where(energies > 0.05, (BEAM - e) / e * (1 - np.exp(-((e / 0.6) ** 3))), 0.0)
    return shape / shape.sum()


def spectrum_image(
    amplitudes, continuum, *, offset_ev=0.0, gain=0.0, fwhm=130.0, metadata_fwhm=130.0, extra=None, seed=0
):
    """EDS_TEM spectrum image: K families of Co, Ni, Zn (amplitudes (rows, cols, 3)) + continuum, Poisson.

    The true energy of channel i is (1 + gain) · i · STEP + offset; the file says i · STEP.
    ``extra`` = (element, amplitudes) adds another element's K family (not among the lines).
    """
    true_edges = (1 + gain) * (np.arange(CHANNELS + 1) - 0.5) * STEP + offset_ev / 1e3
    true_centres = 0.5 * (true_edges[1:] + true_edges[:-1])
    shapes = np.stack([k_family(e).spectrum(true_edges, fwhm) for e in ("Co", "Ni", "Zn")])
    expected = amplitudes @ shapes + continuum[..., None] * continuum_shape(true_centres)
    if extra is not None:
        expected += extra[1][..., None] * k_family(extra[0]).spectrum(true_edges, fwhm)
    signal = exspy.signals.EDSTEMSpectrum(np.random.default_rng(seed).poisson(expected).astype(np.float64))
    axis = signal.axes_manager.signal_axes[0]
    axis.scale, axis.offset, axis.units, axis.name = STEP, 0.0, "keV", "Energy"
    for nav, name in zip(signal.axes_manager.navigation_axes, ("x", "y")):
        nav.scale, nav.units, nav.name = 2.0, "nm", name
    signal.set_microscope_parameters(beam_energy=BEAM, live_time=1.0, energy_resolution_MnKa=metadata_fwhm)
    return signal


def amplitudes_and_continuum(shape=(10, 12), seed=1):
    rng = np.random.default_rng(seed)
    amplitudes = rng.uniform(200, 3000, (*shape, 3)) * np.array([1.0, 0.8, 0.2])
    return amplitudes, rng.uniform(1000, 3000, shape)


def test_line_counts_are_recovered_and_overlapping_families_are_separated():
    amplitudes, continuum = amplitudes_and_continuum()
    cube = SpectrumCube.from_signal(spectrum_image(amplitudes, continuum), "synthetic")
    fit = fit_series([cube], LINES, beam_energy_kev=BEAM)
    for i, (line, element) in enumerate(zip(LINES, ("Co", "Ni", "Zn"))):
        truth = k_family(element).share(line) * amplitudes[..., i]
        found = fit.maps[0][line]
        assert found.shape == truth.shape and found.min() >= 0
        # totals within 4 Poisson standard deviations of the family and the peaks it overlaps
        assert abs(found.sum() - truth.sum()) < 4 * np.sqrt(amplitudes.sum() + continuum.sum() * 0.05), line
        # per pixel: unbiased, scatter close to Poisson
        assert abs(np.mean(found - truth)) < 0.5 * np.std(found - truth) + 1.0
    summed = fit.summed
    parts = sum(summed.family_spectra().values()) + summed.continuum
    np.testing.assert_allclose(parts, summed.model, rtol=1e-9, atol=1e-6)  # the model is its parts
    record = fit.record()
    assert set(record["lines"]) == set(LINES)
    assert record["chi2_reduced"] == pytest.approx(1.0, abs=0.15)
    for line, stats in record["lines"].items():
        assert stats["chi2_reduced"] < 2.0 and abs(stats["residual_fraction"]) < 0.02, line
    assert record["unexplained_peaks"] == []
    assert len(record["spectrum"]["counts"]) == len(record["spectrum"]["model"])


def test_per_pixel_solution_equals_hyperspys_bounded_model_fit():
    hs = pytest.importorskip("hyperspy.api")
    amplitudes, continuum = amplitudes_and_continuum((4, 4), seed=5)
    amplitudes[1, 2, 2] = 0.0  # a pixel without Zn: its bound is active
    cube = SpectrumCube.from_signal(spectrum_image(amplitudes, continuum, seed=2), "synthetic")
    fit = fit_series([cube], LINES, beam_energy_kev=BEAM, refine=False)
    model = pixel_model(fit.summed, CHANNELS, 16)
    maps, _ = fit_tilt(cube, model)
    window = fit.summed.fit_range
    for row, column in ((0, 0), (1, 2), (3, 1)):
        spectrum = hs.signals.Signal1D(cube.counts[row * 4 + column].toarray().ravel()[window].astype(float))
        spectrum.metadata.set_item("Signal.Noise_properties.variance", hs.signals.Signal1D(1.0 / model.weights[window]))
        reference = spectrum.create_model()
        components = []
        for k in range(model.design.shape[1]):
            pattern = hs.model.components1D.ScalableFixedPattern(hs.signals.Signal1D(model.design[window, k]))
            pattern.xscale.free = pattern.shift.free = False
            if k < model.n_families:
                pattern.yscale.bmin = 0.0
            reference.append(pattern)
            components.append(pattern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference.fit(bounded=True)
        for line in LINES:
            column_index, share = model.line_columns[line]
            expected = share * components[column_index].yscale.value
            assert maps[line][row, column] == pytest.approx(expected, rel=1e-5, abs=1e-3), (row, column, line)


def test_energy_calibration_and_resolution_are_refined_on_the_summed_spectrum():
    amplitudes, continuum = amplitudes_and_continuum()
    signal = spectrum_image(amplitudes, continuum, offset_ev=30.0, gain=0.003, fwhm=150.0, metadata_fwhm=130.0)
    fit = fit_series([SpectrumCube.from_signal(signal, "synthetic")], LINES, beam_energy_kev=BEAM)
    calibration = fit.summed.calibration
    assert calibration.offset_kev == pytest.approx(0.030 - 0.003 * 0.0, abs=0.003)
    assert calibration.scale_kev == pytest.approx(1.003 * STEP, rel=3e-4)
    assert calibration.fwhm_mn_ev == pytest.approx(150.0, abs=3.0)
    assert any("detector resolution" in note and "150 eV" in note for note in fit.notes)
    assert any("energy calibration" in note for note in fit.notes)  # +49 eV at Ni Kα: more than 20 eV
    truth = k_family("Ni").share("Ni_Ka") * amplitudes[..., 1].sum()
    assert fit.maps[0]["Ni_Ka"].sum() == pytest.approx(truth, rel=0.02)
    unrefined = fit_series([SpectrumCube.from_signal(signal, "synthetic")], LINES, beam_energy_kev=BEAM, refine=False)
    assert unrefined.summed.record()["chi2_reduced"] > 5 * fit.summed.record()["chi2_reduced"]


def test_an_element_nobody_listed_is_reported_and_modelled_when_named():
    amplitudes, continuum = amplitudes_and_continuum()
    copper = np.full(continuum.shape, 1500.0)
    signal = spectrum_image(amplitudes, continuum, extra=("Cu", copper))
    cube = SpectrumCube.from_signal(signal, "synthetic")
    unlisted = fit_series([cube], LINES, beam_energy_kev=BEAM)
    peaks = unlisted.summed.unexplained
    assert peaks and abs(peaks[0]["energy_kev"] - 8.05) < 0.03 and peaks[0]["guesses"][0] == "Cu Kα"
    assert any(note.startswith("unexplained peak at 8.0") and "Cu Kα?" in note for note in unlisted.notes)
    named = fit_series([cube], LINES, beam_energy_kev=BEAM, elements=["Cu"])
    assert named.summed.unexplained == []
    assert "Cu K" in named.summed.amplitudes
    assert named.summed.amplitudes["Cu K"] == pytest.approx(copper.sum() * 0.99, rel=0.03)  # 1 % is Cu Kβ beyond…
    truth = k_family("Ni").share("Ni_Ka") * amplitudes[..., 1].sum()
    assert named.maps[0]["Ni_Ka"].sum() == pytest.approx(truth, rel=0.01)


def test_expected_elements_the_sum_does_not_show_are_dropped_with_a_reason():
    amplitudes, continuum = amplitudes_and_continuum()
    signal = spectrum_image(amplitudes, continuum)
    signal.metadata.set_item("Sample.elements", ["Co", "Ni", "Zn", "Cr", "Be"])
    fit = fit_series([SpectrumCube.from_signal(signal, "synthetic")], LINES, beam_energy_kev=BEAM)
    assert "Cr K" in fit.summed.dropped and "not shown by the summed spectrum" in fit.summed.dropped["Cr K"]
    assert any("['Be']" in note and "no line in the fitted range" in note for note in fit.notes)


# ----- bad input ------------------------------------------------------------------------------------


def write(folder, signals):
    folder.mkdir(parents=True, exist_ok=True)
    for angle, signal in zip((-20, 0, 20), signals):
        signal.save(folder / f"tilt_{angle:+d}.hspy", overwrite=True)
    return folder


def small_signals(**kwargs):
    amplitudes, continuum = amplitudes_and_continuum((4, 5))
    return [spectrum_image(amplitudes, continuum, seed=s, **kwargs) for s in range(3)]


@pytest.mark.parametrize("intensities", ["fit", "window"])
def test_a_line_outside_the_spectrum_is_named_with_the_range(tmp_path, intensities):
    folder = write(tmp_path / "series", small_signals())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputError, match=r"Pt_Ka \(66\.8\d+ keV\) lies outside .*–9\.99\d keV"):
            load_tilt_series(folder, ["Co_Ka", "Pt_Ka"], intensities=intensities)


def test_an_element_without_a_line_in_range_is_named(tmp_path):
    folder = write(tmp_path / "series", small_signals())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputError, match=r"elements: Be has no X-ray line in the fitted energy range 0\.2"):
            load_tilt_series(folder, LINES, elements=["Be"], intensities="fit")


@pytest.mark.parametrize("intensities", ["fit", "window"])
def test_a_spectrum_without_energy_calibration_is_refused_naming_the_file(tmp_path, intensities):
    signals = small_signals()
    for signal in signals:
        axis = signal.axes_manager.signal_axes[0]
        axis.units, axis.scale, axis.offset = "<undefined>", 1.0, 0.0
    folder = write(tmp_path / "series", signals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputError, match=r"tilt_[-+]\d+\.hspy: the spectrum has no energy calibration"):
            load_tilt_series(folder, LINES, intensities=intensities)


def test_tilts_with_different_energy_axes_are_refused(tmp_path):
    signals = small_signals()
    signals[2].axes_manager.signal_axes[0].offset = 0.05
    folder = write(tmp_path / "series", signals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputError, match="a series must share one energy axis"):
            load_tilt_series(folder, LINES, intensities="fit")


def test_loading_with_fitting_records_the_evidence(tmp_path):
    folder = write(tmp_path / "series", small_signals())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        series = load_tilt_series(folder, LINES, intensities="fit", smooth=1.0)
    load = series.provenance[0]["parameters"]
    assert load["intensities"] == "fit" and "line_windows" not in load
    fit = load["line_fit"]
    assert set(fit["lines"]) == set(LINES) and len(fit["tilts"]) == 3
    assert fit["smooth"] == 1.0 and fit["yields"] == "auto" and fit["beam_energy_kev"] == BEAM
    for line in LINES:
        assert len(load["line_counts"][line]) == 3
        assert series.channel(line).min() >= 0
    pictures = pytest.importorskip("edstomo_microscope.pictures")
    path = pictures.spectrum_fit_figure(fit, path=tmp_path / "fit.png", split_kev=20.0)  # one panel
    assert path.stat().st_size > 10_000


def test_negative_counts_are_refused():
    amplitudes, continuum = amplitudes_and_continuum((3, 3))
    signal = spectrum_image(amplitudes, continuum)
    signal.data[1, 1, 500] = -2.0
    with pytest.raises(InputError, match="synthetic: the spectrum image holds negative or non-finite counts"):
        SpectrumCube.from_signal(signal, "synthetic")


def test_command_line_options_reach_the_pipeline():
    import argparse

    from edstomo_microscope.commands import _pipeline_options, add_quantify
    from edstomo_microscope.pipeline import PipelineOptions

    parser = argparse.ArgumentParser()
    add_quantify(parser.add_subparsers())
    args = parser.parse_args(["quantify", "tilts", "--out", "o", "--elements", "Cu, Ga", "--intensities", "window"])
    options = _pipeline_options(args)
    assert options.intensities == "window" and options.load_options["elements"] == ["Cu", "Ga"]
    default = _pipeline_options(parser.parse_args(["quantify", "tilts", "--out", "o"]))
    assert default.intensities == "fit" and "elements" not in default.load_options
    with pytest.raises(ValueError, match="intensities: 'gauss' must be one of"):
        PipelineOptions(intensities="gauss")


def test_a_pipeline_run_draws_the_spectrum_fit_and_summarises_it(tmp_path):
    import json

    from edstomo_microscope.pipeline import PipelineOptions, run_pipeline
    from edstomo_microscope.synthetic import Region, core_shell_labels, write_spectrum_series

    regions = {1: Region("core", {"Co": 0.7, "Ni": 0.3}), 2: Region("shell", {"Ni": 0.8, "Zn": 0.2})}
    labels = core_shell_labels(14, 14, core_radius=3, shell_radius=6)
    series = write_spectrum_series(tmp_path / "series", labels, regions, LINES, angles_deg=[-60, -30, 0, 30, 60])
    options = PipelineOptions(
        lines=LINES, rebin=1, solver_options={"sirt": {"iterations": 5}}, series="none", axis="none"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_pipeline(series.files, options, out=tmp_path / "out")
    from edstomo import figures

    figure = tmp_path / "out" / "figures" / "spectrum_fit.png"
    assert figure.stat().st_size > 10_000
    description, dpi = figures.read_description(figure)
    assert figures.problems(description, dpi=dpi) == [] and len(description["panels"]) == 4
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["intensities"] == "fit" and summary["line_windows"] is None
    assert set(summary["line_fit"]["lines"]) == set(LINES) and "spectrum" not in summary["line_fit"]
