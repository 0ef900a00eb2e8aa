"""Bootstrap replicas as batch columns of one solve against one solve per replica.

Run: ``python benchmarks/bootstrap_batch.py`` (prints wall and CPU seconds of both).
Case: the paper's phantom (97 × 97 pixels, 31 tilts, Ag Lα and Au Mα, the
paper's dose), HEBT-SIRT α = 0.8, 200 iterations, r_A fitted to each replica,
32 replicas drawn as :func:`edstomo.uncertainty.bootstrap` draws them.
"""

from __future__ import annotations

import time

import numpy as np
from edstomo.registry import plugins
from edstomo_plugins.studies.yuan2020 import phantom_experiment

REPLICAS = 32


def replicas(count: int, seed: int = 0) -> list:
    """``count`` Poisson redraws of the phantom's simulated series (EDS lines; HAADF as simulated)."""
    experiment = phantom_experiment("0.7 sr", 1.0)  # the study's experiment at the paper's dose
    factors = plugins.physics("table")().compute(experiment)
    truth = plugins.phantom("core-shell")().generate(experiment)
    series = plugins.forward("thin-film")(experiment, factors).simulate(truth, noise="poisson", seed=seed)
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(count):
        data = np.array(series.data, dtype=np.float64)
        for line in experiment.lines:
            index = series.channels.index(line)
            data[index] = rng.poisson(series.data[index])
        drawn.append(series.replace(data=data))
    return drawn


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    drawn = replicas(REPLICAS)
    solver = plugins.solver("hebt-sirt")(iterations=200, alpha=0.8)
    solver.solve(drawn[0])  # build and cache the projector

    def together() -> None:
        batched, stacked, _ = solver.batch(drawn)
        batched.solve(stacked)

    def apart() -> None:
        for replica in drawn:
            solver.solve(replica)

    for label, work in (("batch columns of one solve", together), ("one solve per replica", apart)):
        wall, cpu = timed(work)
        print(f"{REPLICAS} replicas, {label}: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
