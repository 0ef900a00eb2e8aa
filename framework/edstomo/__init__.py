"""edstomo: quantitative 3D chemical maps from STEM-EDS and HAADF tilt series.

The core package: units, experiment definitions, data containers, the
projector, plugin interfaces and registry, files, studies and the command
line. It imports no concrete plugin; the built-ins live in ``edstomo_plugins``
and are found through the entry-point group ``edstomo.plugins``, like any
third-party plugin.
"""

from importlib.metadata import PackageNotFoundError, version

from .data import HAADF, CompositionMaps, TiltSeries, Volume, load, save
from .experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from .factors import LineParameters, PhysicsFactors
from .registry import plugins
from .units import Quantity, ureg

try:
    __version__ = version("edstomo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "HAADF",
    "CompositionMaps",
    "EDSDetector",
    "Experiment",
    "HAADFDetector",
    "LineParameters",
    "PhysicsFactors",
    "Quantity",
    "Scan",
    "TiltScheme",
    "TiltSeries",
    "Volume",
    "load",
    "plugins",
    "save",
    "ureg",
]
