"""Shared machinery of the ratio quantifiers (paper eq. 12 and 18).

A reconstructed map of line A holds ``X_A = K · g_A · C_A · ρ`` with an unknown
constant K common to all lines and a per-line factor ``g_A`` (``f_A`` for
EDS-only maps, ``z_A`` for HEBT maps). Dividing by the factors and normalising
removes K and ρ::

    S = Σ_A X_A / g_A                      (the summed map, ∝ ρ)
    C_A = (X_A / g_A) / S                  inside the particle (S > threshold)
    C_A = 0                                outside

The threshold on S is found by the ESF method (:mod:`edstomo.threshold`) or
given by the user. When S has no ESF plateau the quantifier raises, or, with
``fallback="otsu"``, thresholds at Otsu's threshold of S; the provenance step
``quantify`` records which method chose the threshold (``threshold_method``)
and why (``threshold_note``).

Degenerate results are not returned silently: a given threshold that leaves no
voxel in the particle is an error (it would make every fraction 0), and one
whose particle is more than :data:`COLLAPSE_FACTOR` times smaller or larger
than the automatic threshold's (ESF, Otsu when ESF finds no plateau) gives a
:class:`~edstomo.threshold.MaskWarning`, also recorded in the provenance
(``mask_warning``). The scale of S differs between EDS-only and HEBT maps
(f_A and z_A differ by orders of magnitude), so a threshold meant for one is
wrong for the other.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Literal

import numpy as np
from edstomo import provenance
from edstomo.data import HAADF, CompositionMaps, Volume
from edstomo.errors import InputError
from edstomo.interfaces import Quantifier, QuantifierOptions
from edstomo.lines import element_of
from edstomo.threshold import EsfFit, MaskWarning, SliceReader, SummedValues, count_above, esf_threshold
from pydantic import Field

#: A given threshold whose particle is this many times smaller (or larger) than the automatic one's is flagged.
COLLAPSE_FACTOR = 10.0


class RatioOptions(QuantifierOptions):
    """Options of the ratio quantifiers."""

    trials: int = Field(200, ge=8, description="number of trial thresholds of the ESF method")
    fallback: Literal["otsu"] | None = Field(
        None, description="with threshold='esf': None raises when the volume curve has no plateau; 'otsu' uses Otsu's"
    )


class RatioQuantifier(Quantifier):
    """Weight fractions from factor-normalised maps, inside a thresholded particle.

    Options (see :class:`RatioOptions`): ``threshold`` — ``"esf"`` (automatic,
    edge-spread-function method) or a number >= 0 in the units of the summed map
    S = Σ X_A / g_A (map units per b·mol/g); ``trials`` — number of trial
    thresholds of the ESF method; ``fallback`` — with ``threshold="esf"``: None
    (default) raises when the summed map's volume curve has no plateau,
    ``"otsu"`` uses Otsu's threshold of S then.
    """

    Options = RatioOptions

    @abstractmethod
    def factor_values(self, lines: list[str]) -> np.ndarray:
        """The per-line factors g_A (b·mol/g), in the order of ``lines``."""

    def summed(self, maps: Volume) -> np.ndarray:
        """The summed map S = Σ_A max(X_A, 0) / g_A, shape (nz, nx, slices), accumulated in float64."""
        return self.channel_sum(self._normalised(maps))

    def esf(self, maps: Volume) -> EsfFit:
        """The ESF fit on the summed map of ``maps`` (for plots or to inspect the automatic threshold)."""
        return esf_threshold(self.summed(maps), self.options.trials, fallback=self.options.fallback)

    def quantify(self, maps: Volume) -> CompositionMaps:
        normalised = self._normalised(maps)
        summed = self.channel_sum(normalised)
        decision = self.decide(summed)
        mask = summed > decision["threshold"]
        return CompositionMaps(
            weight_fractions=self.fractions(normalised, summed, decision["threshold"]),
            elements=[element_of(line) for line in maps.channels],
            pixel_size=maps.pixel_size,
            mask=mask,
            threshold=decision["threshold"],
            experiment=maps.experiment,
            provenance=[*maps.provenance, self.record(maps.channels, decision)],
        )

    def decide(self, summed: np.ndarray | SliceReader) -> dict[str, object]:
        """The particle threshold of a whole summed map S and how it was chosen.

        S is an array or a reader of slice ranges (:class:`edstomo.threshold.SliceReader`, e.g. S in a
        file); either way it is read a block of slices at a time, with the same result.

        Returns ``{"threshold", "threshold_method", "threshold_note", "mask_voxels"}``
        and, for a given threshold, the comparison with the automatic one
        (``automatic_threshold``, ``automatic_mask_voxels``, ``mask_warning``).
        The maps of a volume may then be quantified in any pieces
        (:meth:`fractions`): every other step is per voxel.

        Raises
        ------
        InputError
            A given threshold that leaves no voxel in the particle.
        """
        checks: dict[str, object] = {}
        summed = SummedValues(summed)  # checked once; read a block of slices at a time from here on
        if self.options.threshold == "esf":
            fit = esf_threshold(summed, self.options.trials, fallback=self.options.fallback)
            threshold, method, note = fit.threshold, fit.method, fit.note
        else:
            threshold, method, note = float(self.options.threshold), "given", ""
        voxels = count_above(summed, threshold)
        if not voxels:
            top = max(summed.max, 0.0)
            raise InputError(
                f"threshold: {threshold:g} leaves no voxel in the particle: the summed map "
                f"S = Σ X_A/{self.accepts} of these {self.name} maps reaches {top:.4g} (map units per b·mol/g); "
                "give a threshold below that, or 'esf'"
            )
        if method == "given":
            checks = self._compare_with_automatic(summed, voxels)
        return {
            "threshold": threshold,
            "threshold_method": method,
            "threshold_note": note,
            "mask_voxels": voxels,
            **checks,
        }

    def fractions(self, normalised: np.ndarray, summed: np.ndarray, threshold: float) -> np.ndarray:
        """C_A = (X_A/g_A) / S inside the particle (S > threshold), 0 outside, computed in place in ``normalised``.

        ``normalised`` (channels, ...) is :meth:`normalised` of any piece of a
        volume and ``summed`` the same piece of S; the result keeps the maps' type.
        """
        mask = summed > threshold
        safe = np.where(mask, summed, 1.0)
        outside = ~mask
        for values in normalised:
            np.divide(values, safe, out=values, casting="same_kind")
            values[outside] = 0.0
        return normalised

    def record(self, channels: list[str], decision: dict[str, object]) -> dict[str, object]:
        """The provenance step ``quantify`` of maps of ``channels`` quantified with ``decision`` (:meth:`decide`)."""
        return provenance.step(
            "quantify",
            self.name,
            threshold_method=decision["threshold_method"],
            threshold_note=decision["threshold_note"],
            threshold=decision["threshold"],
            trials=self.options.trials,
            fallback=self.options.fallback,
            factors=dict(zip(channels, self.factor_values(channels).tolist())),
            factor_unit="b*mol/g",
            **{k: v for k, v in decision.items() if k not in ("threshold", "threshold_method", "threshold_note")},
        )

    def _compare_with_automatic(self, summed: SummedValues, voxels: int) -> dict[str, object]:
        """The automatic threshold's particle size, and a warning when the given one differs by orders of magnitude."""
        try:
            automatic = esf_threshold(summed, self.options.trials, fallback="otsu")
        except ValueError:  # S constant or degenerate: nothing to compare with
            return {}
        reference = count_above(summed, automatic.threshold)
        found: dict[str, object] = {"automatic_threshold": automatic.threshold, "automatic_mask_voxels": reference}
        if reference and not reference / COLLAPSE_FACTOR <= voxels <= reference * COLLAPSE_FACTOR:
            ratio = reference / voxels if voxels < reference else voxels / reference
            found["mask_warning"] = (
                f"the given threshold {float(self.options.threshold):g} keeps {voxels} voxels, "
                f"{ratio:.0f}× {'fewer' if voxels < reference else 'more'} than the automatic "
                f"{automatic.method} threshold {automatic.threshold:.4g} ({reference} voxels); check that it is on "
                f"the scale of these maps' summed map S = Σ X_A/{self.accepts}"
            )
            warnings.warn(f"{self.name}: {found['mask_warning']}", MaskWarning, stacklevel=3)
        return found

    def _normalised(self, maps: Volume) -> np.ndarray:
        """max(X_A, 0) / g_A per channel, shape (channels, nz, nx, slices)."""
        if not isinstance(maps, Volume):
            raise TypeError(f"maps: expected a Volume of reconstructed line maps, got {type(maps).__name__}")
        self.check_channels(maps.channels)
        return self.normalised(maps.data, maps.channels)

    def check_channels(self, channels: list[str]) -> None:
        """Channels this quantifier can turn into weight fractions: EDS lines, one per element, with factors."""
        if HAADF in channels:
            raise ValueError(f"maps: channels {channels} include {HAADF!r}; quantify only the EDS line maps")
        elements = [element_of(line) for line in channels]
        if len(set(elements)) != len(elements):
            raise ValueError(f"maps: channels {channels} give two lines of one element")
        missing = [line for line in channels if line not in self.factors.parameters]
        if missing:
            raise ValueError(f"maps: lines {missing} have no physics factors; the factors cover {self.factors.lines}")

    @staticmethod
    def channel_sum(normalised: np.ndarray) -> np.ndarray:
        """The summed map S: Σ over the channels (first axis) of normalised maps, in float64 channel by channel."""
        total = np.zeros(normalised.shape[1:], dtype=np.float64)
        for values in normalised:
            total += values
        return total

    def normalised(self, data: np.ndarray, channels: list[str]) -> np.ndarray:
        """max(X_A, 0) / g_A of maps ``data`` (channels, ...) of ``channels``: a new array of the maps' float type."""
        dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        factors = self.factor_values(channels)
        result = np.empty(data.shape, dtype=dtype)
        for k, values in enumerate(data):
            np.clip(values, 0.0, None, out=result[k], casting="unsafe")
            result[k] /= dtype.type(factors[k])
        return result
