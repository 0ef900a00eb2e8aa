"""Metrics ``ssim`` and ``psnr`` from scikit-image (the ``images`` extra), with an explicit data range."""

from __future__ import annotations

from types import ModuleType

import numpy as np
from edstomo.interfaces import Metric
from edstomo.options import PluginOptions
from pydantic import Field


def _skimage_metrics() -> ModuleType:
    try:
        from skimage import metrics
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the 'ssim' and 'psnr' metrics need scikit-image: pip install 'edstomo[images]'") from error
    return metrics


class _RangeMetric(Metric):
    """A metric whose value depends on the data range (max − min of possible values)."""

    class Options(PluginOptions):
        data_range: float | None = Field(
            None, gt=0, allow_inf_nan=False, description="data range (image units); default: the reference's span"
        )

    def _range(self, reference: np.ndarray) -> float:
        """The given data range, else the reference's max − min."""
        if self.options.data_range is not None:
            return float(self.options.data_range)
        span = float(reference.max() - reference.min())
        if span <= 0:
            raise ValueError("reference: the image is constant; give data_range explicitly")
        return span


class Ssim(_RangeMetric):
    """Windowed SSIM (Wang et al. 2004, scikit-image ``structural_similarity``, 7-pixel windows).

    2-D images are compared directly; arrays of shape (nz, nx, slices) are
    compared slice by slice (each slice is an independent reconstruction of
    single-axis tomography) and the slice values averaged.

    Parameters
    ----------
    data_range
        Range of the image values, passed to scikit-image; None uses the
        reference's max − min (1 for weight fractions that reach 0 and 1).
    """

    name = "ssim"
    description = "Windowed SSIM (scikit-image), per slice, explicit data range"

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        metrics = _skimage_metrics()
        span = self._range(reference)
        if estimate.ndim == 2:
            return float(metrics.structural_similarity(estimate, reference, data_range=span))
        if estimate.ndim == 3:
            values = [
                metrics.structural_similarity(estimate[..., k], reference[..., k], data_range=span)
                for k in range(estimate.shape[-1])
            ]
            return float(np.mean(values))
        raise ValueError(f"estimate: shape {estimate.shape}; expected (nz, nx) or (nz, nx, slices)")


class Psnr(_RangeMetric):
    """Peak signal-to-noise ratio 10 log10(data_range² / MSE) in dB (scikit-image); inf when equal.

    Parameters
    ----------
    data_range
        Peak-to-peak range of the image values; None uses the reference's max − min.
    """

    name = "psnr"
    description = "Peak signal-to-noise ratio in dB (scikit-image), explicit data range"

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        metrics = _skimage_metrics()
        span = self._range(reference)
        if np.array_equal(estimate, reference):
            return float("inf")
        return float(metrics.peak_signal_noise_ratio(reference, estimate, data_range=span))
