"""Round trips with etspy and HyperSpy: exported tilt series reconstructed by etspy, volumes as RecStack, imports.

Skipped only when etspy (or HyperSpy) is absent; the ``tests`` extra installs etspy on Python ≥ 3.11.
"""

from __future__ import annotations

import warnings

import edstomo as et
import numpy as np
import pytest
from edstomo.data import TiltSeries
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from edstomo.operators import ParallelBeamProjector
from edstomo_microscope.export import save_hspy, stacks
from edstomo_microscope.interop import from_eds_stack, from_image_stacks
from edstomo_microscope.metadata import MetadataWarning

hs = pytest.importorskip("hyperspy.api")
etspy = pytest.importorskip("etspy.api")

ANGLES = np.arange(-70.0, 71.0, 5.0)
N, SLICES = 40, 3


def phantom() -> np.ndarray:
    """An asymmetric object (nz, nx, slices): a mirror or a transposition of it correlates poorly with it."""
    z, x = np.indices((N, N))
    image = 2.0 * ((z - 11) ** 2 + (x - 26) ** 2 < 30) + 1.0 * ((z - 27) ** 2 + (x - 12) ** 2 < 50)
    image += 0.5 * ((np.abs(z - 20) < 3) & (np.abs(x - 20) < 14))
    return np.stack([image * (1 + 0.2 * s) for s in range(SLICES)], axis=-1)


def simulated() -> TiltSeries:
    projector = ParallelBeamProjector(np.deg2rad(ANGLES), (N, N), dtype="float64")
    sinogram = projector.forward(phantom())  # (tilts, positions, slices)
    experiment = Experiment(
        beam_energy="200 keV",
        lines=["Fe_Ka"],
        tilts=TiltScheme(angles=et.ureg.Quantity(ANGLES, "deg")),
        scan=Scan(positions=N, pixel_size="2 nm", slices=SLICES),
        haadf=HAADFDetector(probe_current="100 pA", dwell_time="1 ms"),
        eds=EDSDetector(probe_current="100 pA", dwell_time="1 ms", solid_angle="0.7 sr"),
    )
    data = np.stack([1.7 * sinogram, sinogram])
    return TiltSeries(data, ["HAADF", "Fe_Ka"], et.ureg.Quantity(ANGLES, "deg"), "2 nm", experiment=experiment)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("etspy")
    series = simulated()
    volume = et.plugins.solver("sirt")(iterations=60).solve(series.select(["Fe_Ka"]))
    save_hspy(series, folder, "tilts")
    save_hspy(volume, folder, "volume_eds")
    return series, volume, folder


def test_etspy_reconstruction_of_an_exported_series_agrees_with_edstomo(exported):
    _, volume, folder = exported
    stack = etspy.load(str(folder / "tilts_Fe_Ka.hspy"))
    assert isinstance(stack, etspy.TomoStack)
    np.testing.assert_allclose(stack.tilts.data.ravel(), ANGLES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = stack.reconstruct("SIRT", iterations=60, constrain=True, cuda=False, show_progressbar=False)
    ours = hs.load(folder / "volume_eds_Fe_Ka.hspy")
    # transposed stacks (tilt axis along the rows) would give (N, 3, 3): one slice per image column
    assert theirs.data.shape == ours.data.shape == (SLICES, N, N)
    assert correlation(theirs.data, ours.data) >= 0.9
    truth = stacks(volume.replace(data=phantom()[None]))["Fe_Ka"]
    assert correlation(theirs.data, truth) >= 0.9
    # the object is asymmetric: the exported volume's z order matters (etspy turns the sample the other way)
    assert correlation(theirs.data, ours.data[:, ::-1, :]) < 0.5


def test_volumes_load_as_recstack_with_their_axes(exported):
    _, _, folder = exported
    signal = hs.load(folder / "volume_eds_Fe_Ka.hspy")
    assert isinstance(signal, etspy.RecStack)
    names = [axis.name for axis in signal.axes_manager._axes]
    assert names == ["x", "z", "y"]
    assert all(axis.units == "nm" and axis.scale == pytest.approx(2.0) for axis in signal.axes_manager._axes)


def test_etspy_tomostacks_import_back_to_the_same_series(exported):
    series, _, folder = exported
    loaded = {c: etspy.load(str(folder / f"tilts_{c}.hspy")) for c in ("HAADF", "Fe_Ka")}
    with pytest.warns(MetadataWarning, match="solid_angle"):  # not in HyperSpy's metadata: assumed, and said so
        back = from_image_stacks(loaded)
    assert back.channels == ["HAADF", "Fe_Ka"]
    np.testing.assert_allclose(back.data, series.data, rtol=1e-6, atol=1e-6 * series.data.max())
    np.testing.assert_allclose(back.angles.m_as("deg"), ANGLES)
    assert back.pixel_size.m_as("nm") == pytest.approx(2.0)
    assert back.experiment.beam_energy.m_as("keV") == pytest.approx(200.0)
    assert back.experiment.eds.probe_current.m_as("pA") == pytest.approx(100.0)
    assert [step["action"] for step in back.provenance] == ["import"]


def test_image_stacks_without_angles_are_refused():
    signal = hs.signals.Signal2D(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="tilt angles"):
        from_image_stacks({"Fe_Ka": signal}, beam_energy="200 keV")


def _eds_stack(amplitudes: np.ndarray, angles: np.ndarray):
    """An EDSTEMSpectrum stack (tilts, rows, columns | energy) with an Fe Kα peak of the given heights on a flat
    background."""
    exspy = pytest.importorskip("exspy")
    energy = np.arange(0.0, 10.0, 0.02)
    peak = np.exp(-0.5 * ((energy - 6.4039) / 0.06) ** 2)
    data = 2.0 + amplitudes[..., None] * peak
    signal = exspy.signals.EDSTEMSpectrum(data)
    signal.axes_manager.signal_axes[0].scale = 0.02
    signal.axes_manager.signal_axes[0].units = "keV"
    for axis in signal.axes_manager.navigation_axes[:2]:
        axis.scale, axis.units = 3.0, "nm"
    signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    signal.metadata.set_item("Tomography.tilts", angles)
    return signal


def test_eds_spectrum_stack_in_memory_becomes_line_maps_and_haadf():
    rng = np.random.default_rng(2)
    angles = np.array([10.0, -10.0, 0.0])  # not sorted: the series is sorted by angle
    amplitudes = rng.uniform(50, 100, (3, 6, 5))  # (tilts, rows, columns)
    eds = _eds_stack(amplitudes, angles)
    haadf = hs.signals.Signal2D(3.0 * amplitudes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = from_eds_stack(eds, haadf, ["Fe_Ka"], smooth=0.0)
    assert series.channels == ["HAADF", "Fe_Ka"]
    np.testing.assert_allclose(series.angles.m_as("deg"), [-10.0, 0.0, 10.0])
    order = [1, 2, 0]
    expected = np.transpose(amplitudes[order], (0, 2, 1))  # tilt axis vertical: positions = columns
    np.testing.assert_allclose(series.channel("HAADF"), 3.0 * expected)
    fe = series.channel("Fe_Ka")
    assert fe.shape == expected.shape
    assert correlation(fe, expected) > 0.999
    assert series.experiment.haadf is not None and series.experiment.beam_energy.m_as("keV") == 200.0


def test_imported_stacks_run_through_the_microscope_pipeline(exported, tmp_path):
    from edstomo_microscope.pipeline import PipelineOptions, run_pipeline

    _, _, folder = exported
    loaded = {c: etspy.load(str(folder / f"tilts_{c}.hspy")) for c in ("HAADF", "Fe_Ka")}
    series = from_image_stacks(loaded, solid_angle="0.7 sr")
    options = PipelineOptions(
        series="none",
        axis="none",
        pad=0.0,
        solver_options={"sirt": {"iterations": 20}, "hebt-sirt": {"iterations": 20}},
    )
    result = run_pipeline(series, options, out=tmp_path, pictures=False)
    assert set(result.volumes) == {"sirt", "hebt-sirt"}
    truth = phantom()
    assert correlation(result.volumes["sirt"].channel("Fe_Ka"), truth) > 0.9
    assert (tmp_path / "hspy" / "tilts_Fe_Ka.hspy").is_file() and (tmp_path / "maps_hebt-sirt.h5").is_file()
