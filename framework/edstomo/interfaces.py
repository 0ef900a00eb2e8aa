"""Abstract interfaces of the six plugin kinds (and of studies).

Each plugin is a class that subclasses one interface below, sets the class
attribute ``name`` (the name users ask for, e.g. ``"my-solver"``) and a one-line
``description``, and is declared as an entry point in the group
``edstomo.plugins`` (see :mod:`edstomo.registry`). The data flow is::

    Experiment -> PhysicsModel -> PhysicsFactors
    Phantom -> CompositionMaps -> ForwardModel -> TiltSeries
    TiltSeries -> Solver -> Volume -> Quantifier -> CompositionMaps -> Metric

Contracts are stated on each class; the abstract methods are the only ones a
subclass must write.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from . import provenance
from .data import HAADF, CompositionMaps, TiltSeries, Volume
from .experiment import Experiment
from .factors import LineParameters, PhysicsFactors
from .lines import element_of
from .options import PluginOptions
from .options import validate as validate_options


class Plugin(ABC):
    """Base of every plugin: a kind (set by the interface), a name and its options.

    Class attributes a plugin sets: ``name`` (what users ask for), ``description``
    (one line), ``Options`` (a :class:`~edstomo.options.PluginOptions` model of
    its parameters, validated at construction) and, optionally, ``default =
    True`` to be the plugin of its kind used when a user names none (see
    :meth:`edstomo.registry.Registry.default`).  Options are read as
    ``plugin.options.<name>`` or simply ``plugin.<name>``.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    default: ClassVar[bool] = False
    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(self.label(), self.Options, options)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options")
        if options is not None and name in type(options).model_fields:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def label(cls) -> str:
        """``"<kind> '<name>'"``, e.g. ``"solver 'my-solver'"`` (for messages)."""
        return f"{cls.kind} {getattr(cls, 'name', cls.__name__)!r}"

    @classmethod
    def summary(cls) -> str:
        """The one-line description (``description``, else the docstring's first line)."""
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def parameters(self) -> dict[str, Any]:
        """The options this instance was made with, as JSON-compatible values (for provenance)."""
        return provenance.jsonable(dict(self.options))

    def with_options(self, **changes: Any) -> Plugin:
        """A copy of this plugin with some options changed (validated again)."""
        clone = copy.copy(self)
        clone.options = validate_options(self.label(), self.Options, {**dict(self.options), **changes})
        return clone


class PhysicsModel(Plugin):
    """Computes each line's physical parameters and so its factors f_A and z_A.

    Contract: :meth:`line_parameters` returns a :class:`LineParameters` for one
    line at the experiment's beam energy, with ``sources`` naming where each value
    came from; it raises ``ValueError`` naming the line when it cannot.
    ``sigma_ela`` may be ``None`` when the model has no elastic cross-section.
    """

    kind = "physics"

    @abstractmethod
    def line_parameters(self, line: str, experiment: Experiment) -> LineParameters:
        """Parameters of one line for an experiment."""

    def compute(self, experiment: Experiment) -> PhysicsFactors:
        """The factors of every line of ``experiment``."""
        parameters = {line: self.line_parameters(line, experiment) for line in experiment.lines}
        record = provenance.step("physics", self.name, **self.parameters())
        return PhysicsFactors(self.name, experiment.beam_energy, parameters, [record])


class Phantom(Plugin):
    """A known sample: weight fractions and density on the experiment's grid.

    Contract: :meth:`generate` returns :class:`CompositionMaps` of shape
    ``(elements, positions, positions, slices)`` (the reconstruction grid of the
    experiment's scan) with ``density`` set in g/cm³; fractions sum to 1 where
    the density is positive and to 0 where it is 0.
    """

    kind = "phantom"

    @abstractmethod
    def generate(self, experiment: Experiment) -> CompositionMaps:
        """The phantom for this experiment's scan and elements."""


class ForwardModel(Plugin):
    """Simulates a tilt series from a phantom.

    Contract: :meth:`expected` returns the noise-free mean signal, shape
    ``(channels, tilts, positions, slices)``, channels ``["HAADF", *lines]`` (HAADF
    only when the experiment has a HAADF detector); :meth:`simulate` adds noise.
    """

    kind = "forward"

    def __init__(self, experiment: Experiment, factors: PhysicsFactors, **options: Any):
        super().__init__(**options)
        self.experiment = experiment
        self.factors = factors

    @property
    def channels(self) -> list[str]:
        return ([HAADF] if self.experiment.haadf is not None else []) + list(self.experiment.lines)

    @abstractmethod
    def expected(self, truth: CompositionMaps) -> np.ndarray:
        """Noise-free signal (counts / electrons), shape (channels, tilts, positions, slices)."""

    def simulate(
        self,
        truth: CompositionMaps,
        *,
        noise: str | None = "poisson",
        seed: int | np.random.Generator | None = None,
        haadf_noise: bool = False,
    ) -> TiltSeries:
        """Simulate a tilt series.

        Parameters
        ----------
        truth
            The phantom.
        noise
            ``"poisson"`` (Poisson noise on the EDS channels) or ``None`` (the mean).
        seed
            Seed or generator for the noise; required for ``noise="poisson"``
            so that every simulation is reproducible.
        haadf_noise
            Whether the HAADF channel gets Poisson noise too.
        """
        mean = self.expected(truth)
        data = mean
        if noise not in (None, "poisson"):
            raise ValueError(f"noise: {noise!r} is not a noise model; expected 'poisson' or None")
        if noise == "poisson":
            if seed is None:
                raise ValueError("seed: Poisson noise needs an explicit seed (an int or numpy Generator)")
            rng = np.random.default_rng(seed)
            data = mean.copy()
            for index, channel in enumerate(self.channels):
                if channel != HAADF or haadf_noise:
                    data[index] = rng.poisson(mean[index]).astype(float)
        record = provenance.step(
            "simulate",
            self.name,
            noise=noise,
            seed=seed if isinstance(seed, (int, type(None))) else "generator",
            haadf_noise=haadf_noise,
            physics=self.factors.model,
            phantom_provenance=truth.provenance,
        )
        return TiltSeries(
            data=data,
            channels=self.channels,
            angles=self.experiment.angles,
            pixel_size=self.experiment.scan.pixel_size,
            experiment=self.experiment,
            provenance=[*self.factors.provenance, record],
        )


#: Data a solver can require (``Solver.requires``): sinograms of EDS lines, a HAADF sinogram,
#: and EDS lines as raw counts (a Poisson likelihood needs them unscaled).
DATA_NEEDS: tuple[str, ...] = ("lines", "haadf", "counts")

#: Factors ``g_A`` a line map can be proportional to (``X_A = K g_A C_A ρ``): ``f_A`` (EDS
#: scale, eq. 11) and ``z_A`` (HAADF scale, eq. 17).  ``Solver.produces`` and
#: ``Quantifier.accepts`` use these; :class:`~edstomo.data.Volume` records it as ``factor``.
MAP_FACTORS: tuple[str, ...] = ("f_A", "z_A")


class Solver(Plugin):
    """Reconstructs element maps from a tilt series.

    Contract: :meth:`solve` returns a :class:`Volume` of shape
    ``(channels, positions, positions, slices)`` with one channel per
    reconstructed line (in order) and ``factor`` set to :attr:`produces` for
    line maps; it calls each callback after every iteration and stops early
    when one asks to.  Channels and slices are independent batch columns: the
    maps of a slice (and, for solvers that do not couple channels, of a
    channel) do not depend on the other slices, so a series can be solved in
    chunks of slices (:mod:`edstomo.distributed`) with the same result.

    Capabilities (class attributes) let the pipeline, ``quantify_saved`` and
    the Dask path pair plugins without knowing their names:

    ``requires``
        The data the solver needs, from :data:`DATA_NEEDS`.
    ``produces``
        The factor of its line maps, from :data:`MAP_FACTORS`.
    ``fits_from_data``
        Options that, left unset, are estimated from the data (e.g. response
        ratios); :meth:`prepare` fixes them on a whole series before chunked solving.
    """

    kind = "solver"
    requires: ClassVar[frozenset[str]] = frozenset({"lines"})
    produces: ClassVar[str | None] = "f_A"
    fits_from_data: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def solve(
        self,
        data: TiltSeries,
        *,
        initial: Any = None,
        callbacks: Any = None,
        progress: Any = None,
    ) -> Volume:
        """Reconstruct the EDS line channels of ``data`` (see :class:`edstomo.engine.ReconstructionSolver`)."""

    def prepare(self, data: TiltSeries, *, known: Sequence[Any] = ()) -> Solver:
        """This solver with every option of ``fits_from_data`` fixed from ``data`` (default: itself).

        ``known``: results of other solvers' automatic choices on the same data, which a solver
        may reuse (:meth:`edstomo.engine.ReconstructionSolver.prepare`); ignored here.
        """
        return self

    def couples_slices(self) -> bool:
        """Whether the maps of a slice depend on other slices (e.g. 3-D regularisation; default False).

        Such a solve cannot be split into slice chunks: :func:`edstomo.distributed.solve_file` refuses it.
        """
        return False

    def unfitted(self) -> list[str]:
        """The options of ``fits_from_data`` that are still unset (would be estimated per chunk)."""
        return [name for name in self.fits_from_data if getattr(self.options, name) is None]


class QuantifierOptions(PluginOptions):
    """Options every quantifier has."""

    threshold: Literal["esf"] | Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        "esf", description="particle threshold on the summed map: 'esf' (automatic) or a number >= 0"
    )


class Quantifier(Plugin):
    """Turns reconstructed element maps into weight fractions.

    Contract: :meth:`quantify` returns :class:`CompositionMaps` whose elements
    follow the map channels' lines; inside the particle mask the fractions sum to
    1, outside they are 0; ``mask`` and ``threshold`` record the segmentation.
    ``accepts`` names the map factor (:data:`MAP_FACTORS`) the quantifier takes.
    """

    kind = "quantifier"
    accepts: ClassVar[str]
    Options = QuantifierOptions

    def __init__(self, factors: PhysicsFactors, **options: Any):
        super().__init__(**options)
        self.factors = factors

    @abstractmethod
    def quantify(self, maps: Volume) -> CompositionMaps:
        """Weight fractions from element maps."""


class Metric(Plugin):
    """Compares an estimate with a reference.

    Contract: :meth:`compute` takes two arrays of one shape and returns a float.
    Calling the metric on two arrays gives that float; on maps (``Volume`` or
    ``CompositionMaps``) against ``CompositionMaps`` it gives a dict by element.
    ``higher_is_better`` says which way is good.
    """

    kind = "metric"
    higher_is_better: ClassVar[bool] = True

    @abstractmethod
    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        """The metric of two arrays of equal shape."""

    def __call__(self, estimate: Any, reference: Any) -> float | dict[str, float]:
        if isinstance(estimate, np.ndarray) and isinstance(reference, np.ndarray):
            return self._checked(estimate, reference)
        if isinstance(reference, CompositionMaps):
            truth = reference.weight_fractions
            if isinstance(estimate, CompositionMaps):
                pairs = {e: (estimate.fraction(e), truth[reference.elements.index(e)]) for e in estimate.elements}
            elif isinstance(estimate, Volume):
                pairs = {
                    element_of(c): (estimate.channel(c), reference.fraction(element_of(c))) for c in estimate.channels
                }
            else:
                raise TypeError(
                    f"estimate: expected an array, Volume or CompositionMaps, got {type(estimate).__name__}"
                )
            return {element: self._checked(a, b) for element, (a, b) in pairs.items()}
        raise TypeError(f"reference: expected an array or CompositionMaps, got {type(reference).__name__}")

    def _checked(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        estimate, reference = np.asarray(estimate, dtype=float), np.asarray(reference, dtype=float)
        if estimate.shape != reference.shape:
            raise ValueError(f"estimate: shape {estimate.shape} does not match the reference's {reference.shape}")
        return float(self.compute(estimate, reference))


class Study(Plugin):
    """A validation study: simulations, reconstructions and metrics written to a folder.

    Contract: :meth:`run` writes its tables, figures and a ``summary.json`` into
    ``out`` (created if needed) and returns the summary as a dict.
    """

    kind = "study"

    @abstractmethod
    def run(self, out: str | Path, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        """Run the study; ``progress(stage, done, total)`` is called as it goes."""

    def experiment(self) -> Experiment | None:
        """The experiment the study simulates (``edstomo simulate`` uses the default study's); None if none."""
        return None
