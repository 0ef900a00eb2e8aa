"""Loading tilt series and making line maps from synthetic spectrum images (edstomo_microscope).

The spectrum images are built here with known line counts on a flat background
and written as HyperSpy files, so every expected number is known exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import erf

pytest.importorskip("hyperspy")
exspy = pytest.importorskip("exspy")

import edstomo as et  # noqa: E402
from edstomo_microscope.linemaps import choose_background_windows, extract_line_maps  # noqa: E402
from edstomo_microscope.loading import angle_from_name, find_files, load_tilt_series  # noqa: E402
from edstomo_microscope.metadata import MetadataWarning  # noqa: E402

#: Fraction of a Gaussian inside ±1 FWHM (the default integration window, 2 FWHM wide).
INSIDE_2FWHM = 0.98147

CHANNELS, STEP = 1000, 0.01  # 0-10 keV in 10 eV channels


def spectrum_image(counts: dict[str, np.ndarray], background: float, *, live_time: float = 10.0, tilt=None, rng=None):
    """An EDS_TEM spectrum image: Gaussian lines holding ``counts[line]`` (rows × columns) on a flat background."""
    shape = next(iter(counts.values())).shape
    signal = exspy.signals.EDSTEMSpectrum(np.zeros((*shape, CHANNELS), dtype=np.float64))
    axis = signal.axes_manager.signal_axes[0]
    axis.scale, axis.offset, axis.units, axis.name = STEP, 0.0, "keV", "Energy"
    for nav, name in zip(signal.axes_manager.navigation_axes, ("x", "y")):
        nav.scale, nav.units, nav.name = 2.0, "nm", name
    signal.set_microscope_parameters(beam_energy=200.0, live_time=live_time)
    if tilt is not None:
        signal.metadata.set_item("Acquisition_instrument.TEM.Stage.tilt_alpha", tilt)
    data = np.full((*shape, CHANNELS), background * 1.0)
    for line, amount in counts.items():
        low, high = signal.estimate_integration_windows(windows_width=1.0, xray_lines=[line])[0]
        centre, sigma = (low + high) / 2, (high - low) / 2.3548
        edges = np.append(axis.axis, axis.axis[-1] + STEP)
        cdf = 0.5 * (1 + erf((edges - centre) / (sigma * np.sqrt(2))))
        data += amount[..., None] * np.diff(cdf)[None, None, :]
    signal.data = rng.poisson(data).astype(np.float64) if rng is not None else data
    return signal


def pattern(shape=(12, 10), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(20, 100, shape)


def write_tilts(folder, angles, *, names=None, counts=None, background=0.5, rng=None, stage=None):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, angle in enumerate(angles):
        maps = counts or {"Fe_Ka": pattern(seed=index), "Si_Ka": pattern(seed=100 + index) / 2}
        signal = spectrum_image(maps, background, tilt=None if stage is None else stage[index], rng=rng)
        name = names[index] if names else f"{angle:+g}"
        path = folder / f"{name}.hspy"
        signal.save(path, overwrite=True)
        paths.append(path)
    return paths


def test_line_counts_are_recovered_after_background_subtraction():
    fe, si = pattern(seed=1), pattern(seed=2) / 2
    signal = spectrum_image({"Fe_Ka": fe, "Si_Ka": si}, background=0.5)
    result = extract_line_maps(signal, ["Fe_Ka", "Si_Ka"])
    np.testing.assert_allclose(result.maps["Fe_Ka"], INSIDE_2FWHM * fe, rtol=0.01)
    np.testing.assert_allclose(result.maps["Si_Ka"], INSIDE_2FWHM * si, rtol=0.01)
    raw = extract_line_maps(signal, ["Fe_Ka"], background=False).maps["Fe_Ka"]
    width = result.windows["Fe_Ka"].integration
    assert raw.mean() - result.maps["Fe_Ka"].mean() == pytest.approx(0.5 * (width[1] - width[0]) / STEP, rel=0.1)


def test_background_windows_avoid_interfering_lines():
    signal = spectrum_image({"S_Ka": pattern()}, background=0.2)
    choices = choose_background_windows(signal, ["S_Ka", "Si_Ka", "Fe_Ka"], elements=["Pt", "Mg"])
    table = exspy.material.elements
    others = []
    for element in ("Pt", "Mg", "S", "Si", "Fe"):
        for family, entry in table[element]["Atomic_properties"]["Xray_lines"].as_dictionary().items():
            if entry["weight"] >= 0.05 and entry["energy (keV)"] < 10:
                low, high = signal.estimate_integration_windows(windows_width=1.0, xray_lines=[f"{element}_{family}"])[
                    0
                ]
                others.append((f"{element}_{family}", (low + high) / 2, high - low))
    for line, choice in choices.items():
        assert not choice.note or "used on its own" in choice.note
        windows = [choice.background[:2], choice.background[2:]]
        for start, end in windows:
            for name, energy, fwhm in others:
                if name != line:
                    assert end <= energy - fwhm + 1e-9 or start >= energy + fwhm - 1e-9, (line, name)
    # S Kα sits between the Si Kα and Pt M lines: its windows had to move
    assert choices["S_Ka"].background[1] < 2.05 - 0.08


def test_given_windows_are_used_and_checked():
    signal = spectrum_image({"Fe_Ka": pattern()}, background=0.5)
    result = extract_line_maps(signal, ["Fe_Ka"], background_windows={"Fe_Ka": (5.6, 5.8, 6.8, 7.0)})
    assert result.windows["Fe_Ka"].background == (5.6, 5.8, 6.8, 7.0) and result.windows["Fe_Ka"].note == "given"
    with pytest.raises(ValueError, match="four increasing energies"):
        extract_line_maps(signal, ["Fe_Ka"], background_windows={"Fe_Ka": (5.8, 5.6, 6.8, 7.0)})
    with pytest.raises(ValueError, match="not among the lines"):
        extract_line_maps(signal, ["Fe_Ka"], background_windows={"Si_Ka": (1.0, 1.1, 2.0, 2.1)})


@pytest.mark.parametrize("mean", [0.0, 0.05, 0.5])
def test_low_counts_give_finite_non_negative_maps(mean):
    rng = np.random.default_rng(7)
    counts = {"Fe_Ka": np.full((16, 16), mean), "Si_Ka": np.full((16, 16), mean)}
    signal = spectrum_image(counts, background=0.001 if mean else 0.0, rng=rng)
    result = extract_line_maps(signal, ["Fe_Ka", "Si_Ka"], smooth=1.0)
    for line, values in result.maps.items():
        assert np.all(np.isfinite(values)) and values.min() >= 0, line
        assert result.clipped_counts[line] >= 0
    if mean == 0.0:
        assert all(not values.any() for values in result.maps.values())


def test_angles_from_file_names_when_stage_tilts_are_all_equal(tmp_path):
    angles = [20.0, -20.0, 0.0, -40.0]
    write_tilts(tmp_path / "series", angles)
    with pytest.warns(MetadataWarning, match="probe_current"):
        series = load_tilt_series(tmp_path / "series", ["Fe_Ka", "Si_Ka"], intensities="window")
    np.testing.assert_array_equal(series.angles.m_as("deg"), sorted(angles))
    assert series.channels == ["Fe_Ka", "Si_Ka"]  # no HAADF image in these files
    load = series.provenance[0]["parameters"]
    assert load["angle_source"] == "file names"
    assert any("stage-tilt metadata reads 0 deg" in note for note in load["values"]["notes"])
    assert load["values"]["origins"] == {
        "beam_energy": "metadata",
        "pixel_size": "metadata",
        "probe_current": "assumed",
        "dwell_time": "derived",
        "solid_angle": "assumed",
        "elevation": "metadata",
        "azimuth": "metadata",
    }
    experiment = series.experiment
    assert experiment.beam_energy == et.ureg.Quantity(200.0, "keV")
    assert experiment.eds.dwell_time.m_as("s") == pytest.approx(10.0 / (12 * 10))  # live time / pixels
    # positions run along the image columns (tilt axis vertical)
    fe = extract_line_maps(spectrum_image({"Fe_Ka": pattern(seed=3)}, 0.5), ["Fe_Ka"]).maps["Fe_Ka"]
    np.testing.assert_allclose(series.channel("Fe_Ka")[0], fe.T, rtol=1e-6)  # -40° is the file written 4th (seed 3)


def test_stage_tilts_metadata_and_explicit_angles(tmp_path):
    names = ["a", "b", "c"]
    write_tilts(tmp_path / "s", [0, 0, 0], names=names, stage=[10.0, -10.0, 30.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        series = load_tilt_series(tmp_path / "s", ["Fe_Ka"], probe_current="50 pA", solid_angle="0.9 sr")
        assert series.angles.m_as("deg").tolist() == [-10.0, 10.0, 30.0]
        assert series.provenance[0]["parameters"]["angle_source"] == "metadata"
        given = load_tilt_series(tmp_path / "s", ["Fe_Ka"], angles=et.ureg.Quantity([5, 6, 7], "deg"))
        assert given.angles.m_as("deg").tolist() == [5.0, 6.0, 7.0]
        with pytest.raises(ValueError, match="3 tilts"):
            load_tilt_series(tmp_path / "s", ["Fe_Ka"], angles=["5 deg", "6 deg"])
        with pytest.raises(ValueError, match="deg"):
            load_tilt_series(tmp_path / "s", ["Fe_Ka"], angles=[5, 6, 7])
    assert series.experiment.eds.probe_current == et.ureg.Quantity(50.0, "pA")


def test_rebinning_sums_counts_and_scales_pixels(tmp_path):
    write_tilts(tmp_path / "s", [-10.0, 10.0], counts={"Fe_Ka": np.full((12, 10), 40.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        full = load_tilt_series(tmp_path / "s", ["Fe_Ka"], intensities="window")
        binned = load_tilt_series(tmp_path / "s", ["Fe_Ka"], rebin=2, intensities="window")
    assert binned.shape == (1, 2, 5, 6) and full.shape == (1, 2, 10, 12)
    assert binned.data.sum() == pytest.approx(full.data.sum(), rel=1e-6)
    assert binned.pixel_size == 2 * full.pixel_size
    assert binned.experiment.eds.dwell_time.m_as("s") == pytest.approx(4 * full.experiment.eds.dwell_time.m_as("s"))


def test_rebinned_8_bit_counts_are_summed_exactly_in_a_small_type():
    """The largest 8-bit counts rebinned 4 × 4 need 12 bits: the sum is NumPy's (uint64) in uint16."""
    import hyperspy.api as hs
    from edstomo_microscope.loading import _reduce, _sum_type

    data = np.random.default_rng(0).integers(200, 256, size=(9, 8, 5), dtype=np.uint8)
    data[0, 0] = 255
    reduced = _reduce(hs.signals.Signal1D(data), None, 4, spectral=True)
    assert reduced.data.dtype == np.uint16 and reduced.data.shape == (2, 2, 5)
    expected = data[:8].reshape(2, 4, 2, 4, 5).sum(axis=(1, 3))  # 9 rows: the last is dropped
    np.testing.assert_array_equal(reduced.data, expected)
    assert _sum_type(np.uint8, 257 * 257) == np.uint32 and _sum_type(np.float32, 4) is None


def test_stacked_file_takes_angles_from_tomography_metadata(tmp_path):
    import hyperspy.api as hs

    stack = hs.stack([spectrum_image({"Fe_Ka": pattern(seed=s)}, 0.5) for s in range(3)], show_progressbar=False)
    stack.metadata.set_item("Tomography.tilts", np.array([-30.0, 0.0, 30.0]))
    stack.save(tmp_path / "stack.hspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        series = load_tilt_series(tmp_path / "stack.hspy", ["Fe_Ka"])
    assert series.angles.m_as("deg").tolist() == [-30.0, 0.0, 30.0]
    assert series.provenance[0]["parameters"]["angle_source"] == "stack metadata"
    assert series.shape == (1, 3, 10, 12)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.bcf"):
        load_tilt_series([tmp_path / "nowhere.bcf"], ["Fe_Ka"])
    bad = tmp_path / "junk" / "-5.bcf"
    bad.parent.mkdir()
    bad.write_bytes(b"not a bruker file")
    with pytest.raises(ValueError, match="-5.bcf"):
        load_tilt_series(bad.parent, ["Fe_Ka"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        find_files(tmp_path / "empty")


def test_no_angle_anywhere_is_an_error(tmp_path):
    write_tilts(tmp_path / "s", [0, 0], names=["first", "second"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(ValueError, match="angles"):
            load_tilt_series(tmp_path / "s", ["Fe_Ka"])


@pytest.mark.parametrize(
    ("name", "angle"),
    [("-10.bcf", -10.0), ("tilt_+35.5deg.emd", 35.5), ("series2_-40.hspy", -40.0), ("0.bcf", 0.0), ("map.bcf", None)],
)
def test_angle_from_name(name, angle):
    assert angle_from_name(name) == angle


@pytest.mark.parametrize("intensities", ["window", "fit"])
def test_pipeline_at_very_low_counts_gives_finite_maps(tmp_path, intensities):
    """Under 0.1 count per pixel per line, one line absent: no NaN, no division warning, fractions sum to 1."""
    from edstomo_microscope.pipeline import PipelineOptions, run_pipeline

    rng = np.random.default_rng(11)
    shape = (16, 16)
    rows, cols = np.indices(shape)
    blob = ((rows - 8) ** 2 + (cols - 7) ** 2 < 20).astype(float)
    counts = {"Fe_Ka": 0.08 * blob, "Si_Ka": 0.05 * blob + 0.01, "Ni_Ka": np.zeros(shape)}
    write_tilts(tmp_path / "low", [-30.0, -15.0, 0.0, 15.0, 30.0], counts=counts, background=0.002, rng=rng)
    options = PipelineOptions(
        lines=["Fe_Ka", "Si_Ka", "Ni_Ka"],
        rebin=1,
        solver_options={"sirt": {"iterations": 10}},
        physics="table",
        intensities=intensities,
    )
    options.physics_options = {
        "dataset": None,
        "values": {
            "Fe_Ka": {"sigma_ion": "318 b", "omega": 0.336, "p": 0.892},
            "Si_Ka": {"sigma_ion": "1747 b", "omega": 0.0485, "p": 0.983},
            "Ni_Ka": {"sigma_ion": "259 b", "omega": 0.401, "p": 0.891},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        warnings.simplefilter("error", RuntimeWarning)  # e.g. division by zero or invalid value
        result = run_pipeline(tmp_path / "low", options, out=tmp_path / "out", pictures=False)
    load = result.raw.provenance[0]["parameters"]
    if intensities == "window":
        assert load["clipped_pixels"]["Ni_Ka"] > 0  # background noise only: clipped, and the clipping recorded
    else:  # background noise only: the amplitude is 0 in most pixels, and that is recorded
        assert sum(tilt["lines"]["Ni_Ka"]["zero_pixels"] for tilt in load["line_fit"]["tilts"]) > 5 * 16 * 16 // 2
    maps = result.maps["sirt"]
    assert np.all(np.isfinite(maps.weight_fractions))
    np.testing.assert_allclose(maps.weight_fractions.sum(axis=0)[maps.mask], 1.0)
    assert "hebt-sirt" not in result.maps and any("no HAADF channel" in note for note in result.notes)
    assert (tmp_path / "out" / "maps_sirt.h5").is_file()
