"""Synthetic EDS spectrum-image tilt series of a 3-D particle with known composition, as HyperSpy files.

For testing and benchmarking line-intensity extraction end to end: the files
are read by :func:`~edstomo_microscope.loading.load_tilt_series` and
``edstomo quantify`` exactly as microscope files are.

How a spectrum is made, pixel by pixel:

* the projected mass thickness of every element along the beam comes from the
  thin-film forward model (plugin ``thin-film``, the strip projector), and the
  counts of each element's reference line (the requested line, else its
  strongest K, L or M line) from ``n f_A`` with the physics plugin the
  pipeline uses (the registry's default) — so quantifying the requested lines
  with that plugin recovers the composition;
* every family of the element (:mod:`.families`: Kα and Kβ, all L and M lines,
  with the relative intensities the fit uses by default: xraylib's for K and L
  families, EADL's for M families) is added with the amplitude
  the reference line implies (other families of the element in proportion to
  their ``emission_barn``), as Gaussians at the detector resolution;
* a continuum ∝ Z²/A per unit mass thickness with a Kramers-like shape
  ``(E0 − E)/E`` rolled off below 1 keV (the detector window), scaled to a
  chosen fraction of the characteristic counts;
* Poisson noise.

:func:`interior_masks` and :func:`region_means` evaluate a reconstruction away
from surfaces and interfaces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage
from edstomo.data import CompositionMaps
from edstomo.errors import InputError
from edstomo.experiment import EDSDetector, Experiment, Scan, TiltScheme
from edstomo.lines import atomic_number, atomic_weight, parse_line
from edstomo.registry import plugins
from edstomo.units import ureg

from .families import Family, element_families, families_of_lines

__all__ = [
    "Region",
    "SyntheticSeries",
    "core_shell_labels",
    "interior_masks",
    "region_means",
    "write_spectrum_series",
]


@dataclass(frozen=True)
class Region:
    """A region of a phantom: its composition (weight fractions summing to 1) and density (g/cm³)."""

    name: str
    composition: Mapping[str, float]
    density: float = 8.0

    def __post_init__(self) -> None:
        total = sum(self.composition.values())
        if not self.composition or abs(total - 1.0) > 1e-6 or min(self.composition.values()) < 0:
            raise InputError(
                f"region {self.name!r}: weight fractions {dict(self.composition)} must be ≥ 0 and sum to 1"
            )
        if not self.density > 0:
            raise InputError(f"region {self.name!r}: density {self.density!r} must be positive (g/cm³)")
        for element in self.composition:
            atomic_number(element)


def core_shell_labels(size: int, slices: int, core_radius: float, shell_radius: float) -> np.ndarray:
    """Labels (nz, nx, slices) of a sphere: 1 inside ``core_radius``, 2 up to ``shell_radius``, 0 outside (pixels)."""
    if not 0 < core_radius < shell_radius or 2 * shell_radius > min(size, slices):
        raise InputError(
            f"core_radius, shell_radius: {core_radius!r} < {shell_radius!r} (pixels) must fit in a "
            f"{size} × {size} × {slices} grid"
        )
    z, x, y = np.meshgrid(
        np.arange(size) - (size - 1) / 2,
        np.arange(size) - (size - 1) / 2,
        np.arange(slices) - (slices - 1) / 2,
        indexing="ij",
    )
    radius = np.sqrt(z**2 + x**2 + y**2)
    labels = np.zeros(radius.shape, dtype=np.int8)
    labels[radius <= shell_radius] = 2
    labels[radius <= core_radius] = 1
    return labels


def interior_masks(labels: np.ndarray, margin: float = 3.0) -> dict[int, np.ndarray]:
    """Each region's voxels farther than ``margin`` pixels from any other label (surfaces and interfaces)."""
    masks = {}
    for label in np.unique(labels):
        if label == 0:
            continue
        masks[int(label)] = scipy.ndimage.distance_transform_edt(labels == label) > margin
    return masks


def region_means(maps: CompositionMaps, labels: np.ndarray, margin: float = 3.0) -> dict[int, dict[str, float]]:
    """Mean weight fraction of every element inside each region's interior (see :func:`interior_masks`)."""
    if maps.shape != labels.shape:
        raise InputError(f"maps: grid {maps.shape} differs from the labels' {labels.shape}")
    return {
        label: {element: float(maps.fraction(element)[mask].mean()) for element in maps.elements}
        for label, mask in interior_masks(labels, margin).items()
    }


@dataclass
class SyntheticSeries:
    """What :func:`write_spectrum_series` wrote and the truth to compare with.

    Attributes
    ----------
    files : list of Path
        One ``.hspy`` file per tilt.
    labels : ndarray
        Region labels (nz, nx, slices).
    regions : dict of int to Region
        The regions by label.
    truth : dict of int to dict of str to float
        Per region, the weight fractions of the requested lines' elements,
        normalised over those elements (what EDS quantification can recover).
    line_counts : dict of str to float
        Noise-free counts of each requested line, summed over the series.
    """

    files: list[Path]
    labels: np.ndarray
    regions: dict[int, Region]
    truth: dict[int, dict[str, float]]
    line_counts: dict[str, float] = field(default_factory=dict)


def _continuum_shape(energies: np.ndarray, beam_energy_kev: float) -> np.ndarray:
    e = np.maximum(energies, 1e-3)
    shape = np.where(energies > 0.05, (beam_energy_kev - e) / e * (1.0 - np.exp(-((e / 0.6) ** 3))), 0.0)
    return shape / shape.sum()


def _reference_lines(elements: Sequence[str], lines: Sequence[str], beam_energy_kev: float) -> dict[str, str]:
    """The line that carries each element's counts: the requested one, else the strongest of its lowest family."""
    chosen = {parse_line(line).element: line for line in lines}
    names = {"K": "Ka", "L": "La", "M": "Ma"}
    for element in elements:
        if element not in chosen:
            families = element_families(element, beam_energy_kev)
            chosen[element] = f"{element}_{names[families[0].shell]}"
    return chosen


def write_spectrum_series(
    folder: str | Path,
    labels: np.ndarray,
    regions: Mapping[int, Region],
    lines: Sequence[str],
    *,
    angles_deg: Sequence[float],
    beam_energy_kev: float = 80.0,
    pixel_size_nm: float = 2.0,
    electrons_per_pixel: float = 2e7,
    channels: int = 1000,
    channel_kev: float = 0.01,
    fwhm_mn_ev: float = 130.0,
    continuum_fraction: float = 0.5,
    sample_elements: Sequence[str] | None = None,
    physics: str | None = None,
    yields: str | Mapping[str, str] = "auto",
    seed: int = 0,
) -> SyntheticSeries:
    """Write one HyperSpy ``.hspy`` EDS spectrum image per tilt (see the module docstring).

    Parameters
    ----------
    folder : path
        Where to write (created if needed); files are named ``tilt_<angle>.hspy``.
    labels : ndarray
        Region labels (nz, nx, slices), 0 for vacuum; the tilt axis runs along the slices.
    regions : dict of int to Region
        Composition and density of each label.
    lines : list of str
        The lines a user would map; the truth is normalised over their elements.
        Elements of the regions without a line here are still emitted (impurities).
    angles_deg : list of float
        Tilt angles (deg), written as the stage tilt of each file.
    beam_energy_kev, pixel_size_nm : float
        Beam energy (keV) and pixel size (nm).
    electrons_per_pixel : float
        EDS dose per pixel; sets the counts.
    channels, channel_kev : int, float
        Energy axis: channel ``i`` is centred at ``i · channel_kev`` keV.
    fwhm_mn_ev : float
        Detector resolution at Mn Kα (eV), also written to the metadata.
    continuum_fraction : float
        Continuum counts as a fraction of the characteristic counts (over the whole series).
    sample_elements : list of str, optional
        ``metadata.Sample.elements`` of the files; default the lines' elements.
    physics : str, optional
        Physics plugin for the counts of the reference lines; default the registry's default, as the pipeline.
    yields : {"auto", "xraylib", "eadl"} or dict
        Atomic data of the family shapes (see :func:`~edstomo_microscope.families.element_families`).
    seed : int
        Seed of the Poisson noise.
    """
    import exspy

    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] != labels.shape[1]:
        raise InputError(f"labels: shape {labels.shape} must be (n, n, slices)")
    unknown = set(np.unique(labels)) - {0} - set(regions)
    if unknown:
        raise InputError(f"labels: {sorted(unknown)} have no region")
    elements = sorted({e for r in regions.values() for e, w in r.composition.items() if w > 0})
    requested = [parse_line(line).element for line in lines]
    references = _reference_lines(elements, lines, beam_energy_kev)
    size, _, slices = labels.shape
    angles = np.asarray(angles_deg, dtype=float)
    reference_lines = [references[e] for e in elements]
    experiment = Experiment(
        name="synthetic",
        beam_energy=ureg.Quantity(beam_energy_kev, "keV"),
        lines=reference_lines,
        tilts=TiltScheme(angles=ureg.Quantity(angles, "deg")),
        scan=Scan(positions=size, pixel_size=ureg.Quantity(pixel_size_nm, "nm"), slices=slices),
        eds=EDSDetector(
            probe_current=ureg.Quantity(1.0, "nA"),
            dwell_time=ureg.Quantity(electrons_per_pixel * 1.602176634e-19 / 1e-9, "s"),
            solid_angle=ureg.Quantity(0.7, "sr"),
        ),
    )
    model = plugins.physics(physics) if physics else plugins.default("physics")
    factors = model().compute(experiment)
    fractions = np.zeros((len(elements), *labels.shape))
    density = np.zeros(labels.shape)
    for label, region in regions.items():
        inside = labels == label
        density[inside] = region.density
        for i, element in enumerate(elements):
            fractions[i][inside] = region.composition.get(element, 0.0)
    truth_maps = CompositionMaps(fractions, elements, ureg.Quantity(pixel_size_nm, "nm"), density=density)
    forward = plugins.forward("thin-film")(experiment, factors)
    thickness = forward.mass_thickness(truth_maps)  # (elements, tilts, positions, slices), g/cm²
    scales = forward.scales()
    edges = (np.arange(channels + 1) - 0.5) * channel_kev
    centres = np.arange(channels) * channel_kev
    # expected counts per channel for unit family amplitude, and each family's amplitude per reference count
    shapes: list[np.ndarray] = []
    per_reference: list[tuple[int, float]] = []
    for i, element in enumerate(elements):
        families = {f.name: f for f in element_families(element, beam_energy_kev, yields=yields)}
        reference = references[element]
        ref_family: Family = families[families_of_lines([reference])[reference]]
        share = ref_family.share(reference)
        for family in families.values():
            shapes.append(family.spectrum(edges, fwhm_mn_ev))
            per_reference.append((i, family.emission_barn / ref_family.emission_barn / share))
    shape_matrix = np.stack(shapes)  # (families, channels)
    weights = np.array([atomic_number(e) ** 2 / atomic_weight(e) for e in elements])
    continuum = _continuum_shape(centres, beam_energy_kev)
    line_counts = np.stack([scales[references[e]] * thickness[i] for i, e in enumerate(elements)])
    amplitudes = np.stack([factor * line_counts[i] for i, factor in per_reference])  # (families, t, p, s)
    level = np.tensordot(weights, thickness, axes=1)  # (tilts, positions, slices)
    level *= continuum_fraction * amplitudes.sum() / max(level.sum(), 1e-300)
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for t, angle in enumerate(angles):
        # images: rows = slices (along the tilt axis), columns = positions
        expected = np.einsum("fps,fc->spc", amplitudes[:, t], shape_matrix) + level[t].T[..., None] * continuum
        signal = exspy.signals.EDSTEMSpectrum(rng.poisson(expected).astype(np.uint16))
        axis = signal.axes_manager.signal_axes[0]
        axis.scale, axis.offset, axis.units, axis.name = channel_kev, 0.0, "keV", "Energy"
        for nav, name in zip(signal.axes_manager.navigation_axes, ("x", "y")):
            nav.scale, nav.units, nav.name = pixel_size_nm, "nm", name
        signal.set_microscope_parameters(
            beam_energy=beam_energy_kev,
            live_time=1.0,
            tilt_stage=float(angle),
            energy_resolution_MnKa=fwhm_mn_ev,
        )
        signal.metadata.set_item("Sample.elements", list(sample_elements or sorted(set(requested))))
        signal.metadata.set_item("General.title", "EDS")
        path = folder / f"tilt_{angle:+06.1f}.hspy"
        signal.save(path, overwrite=True)
        files.append(path)
    truth = {}
    for label, region in regions.items():
        total = sum(region.composition.get(e, 0.0) for e in requested)
        truth[label] = {e: region.composition.get(e, 0.0) / total for e in requested}
    counts = {line: float(line_counts[elements.index(parse_line(line).element)].sum()) for line in lines}
    return SyntheticSeries(files, labels, dict(regions), truth, counts)
