"""Real microscope data: from raw EDS spectrum images per tilt to quantified 3D maps.

* :mod:`.loading` — read tilt files (Bruker ``.bcf``, Velox ``.emd``, HyperSpy
  ``.hspy``) through HyperSpy/RosettaSciIO into a :class:`~edstomo.data.TiltSeries`;
* :mod:`.metadata` — acquisition values from the metadata, and what was assumed;
* :mod:`.linefit` — line maps by fitting whole line families and a continuum to every pixel
  (the default), with :mod:`.families` (lines and relative intensities from the atomic data),
  :mod:`.spectrum_model` (calibration, continuum and evidence from the summed spectrum) and
  :mod:`.nnls` (non-negative least squares for all pixels at once);
* :mod:`.linemaps` — background-subtracted line maps by window integration (exSpy's ``get_lines_intensity``);
* :mod:`.synthetic` — synthetic spectrum-image tilt series of a 3-D particle, as HyperSpy files;
* :mod:`.interop` — HyperSpy/exSpy spectrum stacks and etspy ``TomoStack`` objects in memory
  into a :class:`~edstomo.data.TiltSeries`;
* :mod:`.alignment` — HAADF-to-EDS and tilt-series alignment (cross-correlation, StackReg,
  centres of mass), tilt-axis shift and rotation with their uncertainties;
* :mod:`.export` — HDF5, HyperSpy/etspy ``.hspy`` and (optional) TIFF output;
* :mod:`.pictures` — orthoslices, colour composites and 3D views (publication figures);
* :mod:`.viewer` — ``edstomo view``: napari, or figures when headless;
* :mod:`.quiet` — quiet command-line output: deprecations hidden, model notes kept once;
* :mod:`.pipeline` — the whole chain, with progress and timings;
* :mod:`.commands` — the ``reconstruct``, ``quantify`` and ``view`` commands.

HyperSpy, exSpy and RosettaSciIO are the optional extra ``microscope``
(``pip install "edstomo[microscope]"``); they are imported only when a file is
read or written, like matplotlib for pictures.
"""

from .alignment import (
    Alignment,
    apply_alignment,
    estimate_tilt_axis,
    find_tilt_axis,
    haadf_eds_shifts,
    series_shifts,
)
from .interop import from_eds_stack, from_image_stacks
from .linemaps import extract_line_maps
from .loading import DEFAULT_LINES, load_tilt_series
from .metadata import MetadataWarning
from .pipeline import PipelineOptions, PipelineResult, quantify_saved, run_pipeline

__all__ = [
    "DEFAULT_LINES",
    "Alignment",
    "MetadataWarning",
    "PipelineOptions",
    "PipelineResult",
    "apply_alignment",
    "estimate_tilt_axis",
    "extract_line_maps",
    "find_tilt_axis",
    "from_eds_stack",
    "from_image_stacks",
    "haadf_eds_shifts",
    "load_tilt_series",
    "quantify_saved",
    "run_pipeline",
    "series_shifts",
]
