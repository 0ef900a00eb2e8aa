"""
Files for HyperSpy and etspy
============================

edstomo writes tilt series and volumes as HyperSpy ``.hspy`` files in etspy's geometry (see
:doc:`/files`). Here a simulated series and its SIRT reconstruction are exported, read back
with HyperSpy, and — when etspy is installed — the series is reconstructed by etspy's own SIRT
and compared with edstomo's volume.
"""

import tempfile
import warnings
from pathlib import Path

import edstomo as et
import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np
from edstomo import figures
from edstomo_microscope.export import save_hspy

experiment = et.Experiment(
    beam_energy="200 keV",
    lines=["Ag_La", "Au_Ma"],
    tilts=et.TiltScheme(start="-70 deg", stop="70 deg", step="5 deg"),
    scan=et.Scan(positions=64, pixel_size="2 nm", slices=2),
    haadf=et.HAADFDetector(probe_current="50 pA", dwell_time="10 us"),
    eds=et.EDSDetector(probe_current="50 pA", dwell_time="50 ms", solid_angle="0.7 sr"),
)
factors = et.plugins.physics("mcxray")().compute(experiment)
truth = et.plugins.phantom("core-shell")().generate(experiment)
series = et.plugins.forward("thin-film")(experiment, factors).simulate(truth, noise="poisson", seed=1)
volume = et.plugins.solver("sirt")(iterations=60).solve(series)

folder = Path(tempfile.mkdtemp())
save_hspy(series, folder, "tilts")
save_hspy(volume, folder, "volume_eds")
tilts = hs.load(folder / "tilts_Au_Ma.hspy")
print(tilts)
print(tilts.axes_manager)
print("beam energy (keV):", tilts.metadata.Acquisition_instrument.TEM.beam_energy)
print("elements:", tilts.metadata.Sample.elements, "line:", tilts.metadata.Sample.xray_lines)

# %%
# etspy reconstructs the exported series one image column (one slice) at a time.
ours = hs.load(folder / "volume_eds_Au_Ma.hspy")
try:
    import etspy.api as etspy
except ImportError:
    etspy = None
panels = [("edstomo SIRT (exported)", ours.data[0])]
if etspy is not None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack = etspy.load(str(folder / "tilts_Au_Ma.hspy"))
        theirs = stack.reconstruct("SIRT", iterations=60, constrain=True, cuda=False, show_progressbar=False)
    print("correlation of the volumes:", np.corrcoef(theirs.data.ravel(), ours.data.ravel())[0, 1])
    panels.append(("etspy SIRT of the exported series", theirs.data[0]))

top = max(float(image.max()) for _, image in panels)
fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), layout="constrained", squeeze=False)
for ax, (title, image) in zip(axes[0], panels):
    shown = figures.image_panel(ax, image, 2.0, limits=(0.0, top), title=title, xlabel="y", ylabel="z")
figures.colour_bar(fig, shown, axes[0].tolist(), f"Au X_A (arb. units, 0–{top:.3g})")
plt.show()
