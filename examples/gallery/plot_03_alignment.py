"""
Aligning a tilt series and finding its tilt axis
================================================

A series of balls is projected, then every tilt is moved by a random shift and the tilt axis
turned by 2° and moved by 3 pixels. Cross-correlation (or StackReg) recovers the shifts; the
tilt axis is found by the reconstruction residual, by centres of mass and by the maximum image,
each with its uncertainty.
"""

import edstomo as et
import matplotlib.pyplot as plt
import numpy as np
from edstomo import figures
from edstomo.data import TiltSeries
from edstomo.operators import ParallelBeamProjector
from edstomo_microscope.alignment import (
    Alignment,
    apply_alignment,
    estimate_tilt_axis,
    series_shifts,
    tilt_axis_com,
    tilt_axis_max_image,
)

rng = np.random.default_rng(1)
n, slices = 64, 96
z, x, s = np.mgrid[:n, :n, :slices]
volume = np.zeros((n, n, slices))
for _ in range(30):
    c = rng.uniform([16, 16, 8], [48, 48, 88])
    volume += ((z - c[0]) ** 2 + (x - c[1]) ** 2 + (s - c[2]) ** 2 < rng.uniform(3, 7) ** 2) * rng.uniform(0.5, 2)
angles = np.arange(-60.0, 61.0, 5.0)
sinograms = ParallelBeamProjector(np.radians(angles), (n, n)).forward(volume)
truth = TiltSeries(sinograms[None], ["HAADF"], et.ureg.Quantity(angles, "deg"), "1 nm")

moves = np.round(rng.uniform(-3, 3, (angles.size, 2)))
moves[angles.size // 2] = 0
axis = Alignment(truth.angles, truth.pixel_size, np.tile([3.0, 0.0], (angles.size, 1)), axis_rotation=-2.0)
tilted = apply_alignment(truth, axis, crop=False)
misaligned = apply_alignment(tilted, Alignment.from_shifts(truth.angles, moves, "1 nm"), crop=False)

# %%
# Tilt-series shifts by phase cross-correlation, each tilt against its neighbour towards 0°.
found = series_shifts(misaligned, "xcorr")
print("largest error of the recovered shifts (pixels):", float(np.abs(found + moves).max()))
shifted = apply_alignment(misaligned, Alignment.from_shifts(truth.angles, found, "1 nm"), crop=False)

# %%
# The tilt axis, three ways (true: offset +3 pixels, rotation +2°).
for method in (estimate_tilt_axis, tilt_axis_com, tilt_axis_max_image):
    shift, rotation, record = method(shifted)
    error = record.get("shift_uncertainty")
    shift_text = f"{shift:+.2f} ± {error:.2f} px" if error is not None else "not measured"
    print(
        f"{method.__name__:<20} offset {shift_text}, rotation {rotation:+.2f} ± {record['rotation_uncertainty']:.2f}°"
    )

# %%
# The maximum over the tilts shows the streaks that features trace across the (turned) axis.
fig, axes = plt.subplots(1, 2, figsize=(8, 4.4), layout="constrained")
for ax, (title, series) in zip(axes, [("misaligned", misaligned), ("shifts corrected", shifted)]):
    image = series.data[0].max(axis=0).T  # tilt axis vertical
    shown = figures.image_panel(ax, image, 1.0, limits=(0.0, float(image.max())), title=title, xlabel="across axis")
    figures.colour_bar(fig, shown, ax, "maximum over the tilts (arb. units)")
plt.show()
