"""Real microscope data: from raw EDS spectrum images per tilt to quantified 3D maps.

* :mod:`.loading` — read tilt files (Bruker ``.bcf``, Velox ``.emd``, HyperSpy
  ``.hspy``) through HyperSpy/RosettaSciIO into a :class:`~edstomo.data.TiltSeries`;
* :mod:`.metadata` — acquisition values from the metadata, and what was assumed;
* :mod:`.linemaps` — background-subtracted line maps (exSpy's ``get_lines_intensity``);
* :mod:`.alignment` — HAADF-to-EDS and tilt-series alignment, tilt-axis shift and rotation;
* :mod:`.export` — HDF5, HyperSpy ``.hspy`` (etspy-compatible) and TIFF output;
* :mod:`.pictures` — orthoslices, colour composites and 3D views;
* :mod:`.pipeline` — the whole chain, with progress and timings.

HyperSpy, exSpy and RosettaSciIO are the optional extra ``microscope``
(``pip install "edstomo[microscope]"``); they are imported only when a file is
read or written, like matplotlib for pictures.
"""
