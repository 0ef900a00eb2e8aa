"""Arrays written and read a range of slices at a time (edstomo.chunked), and map statistics computed in pieces."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from edstomo import chunked
from edstomo.data import CompositionMaps, load, save
from edstomo.stored import Stored
from edstomo_microscope import statistics
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(1, 30)),
    cuts=st.lists(st.integers(1, 29), max_size=4),
    dtype=st.sampled_from(["float32", "float64", "bool"]),
)
def test_pieces_written_in_any_order_read_back_in_any_range(tmp_path_factory, shape, cuts, dtype):
    rng = np.random.default_rng(len(cuts))
    array = (rng.random(shape) * (rng.random(shape) > 0.4)).astype(dtype)
    edges = sorted({0, shape[-1], *(c for c in cuts if c < shape[-1])})
    path = tmp_path_factory.mktemp("chunked") / "a.h5"
    with h5py.File(path, "w") as file:
        dataset = chunked.create_array(file, "x", shape, array.dtype, "gzip")
        for start, stop in reversed(list(itertools.pairwise(edges))):  # any order, aligned or not
            chunked.write_array(dataset, array[..., start:stop], start)
    with h5py.File(path, "r") as file:
        assert file["x"].compression == "gzip" and file["x"].chunks[-1] == min(chunked.CHUNK_SLICES, shape[-1])
        np.testing.assert_array_equal(file["x"][()], array)  # HDF5's own filter reads the threaded chunks
        for start, stop in itertools.pairwise(edges):
            np.testing.assert_array_equal(chunked.read_array(file["x"], start, stop), array[..., start:stop])
        np.testing.assert_array_equal(chunked.read_array(file["x"], 0, shape[-1]), array)


def test_a_piece_that_does_not_fit_is_refused(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        dataset = chunked.create_array(file, "x", (2, 3, 4, 10), np.float32, "gzip")
        with pytest.raises(ValueError, match="does not fit"):
            chunked.write_array(dataset, np.zeros((2, 3, 4, 5)), 8)
        with pytest.raises(ValueError, match="compression"):
            chunked.create_array(file, "y", (2, 3), np.float32, "lzf")


def _maps(seed: int, elements: int = 3, shape=(9, 8, 21)) -> CompositionMaps:
    rng = np.random.default_rng(seed)
    raw = rng.random((elements, *shape)) ** 3
    raw[1, :, :, :5] = 0.0  # an element absent from some slices
    mask = rng.random(shape) > 0.3
    fractions = np.where(mask, raw / raw.sum(axis=0), 0.0).astype(np.float32)
    return CompositionMaps(fractions, ["Fe", "S", "O"][:elements], "2 nm", mask=mask, threshold=0.1)


def _reference_findings(maps: CompositionMaps, q: float = 0.9) -> dict:
    """Straight from the definitions, whole arrays in float64."""
    w, mask = maps.weight_fractions.astype(np.float64), maps.mask
    out = {"particle_voxels": int(mask.sum()), "elements": {}, "correlations": {}}
    for i, e in enumerate(maps.elements):
        inside = w[i][mask]
        rich = mask & (w[i] >= np.quantile(inside, q))
        out["elements"][e] = {
            "mean_weight_fraction": inside.mean(),
            "max_weight_fraction": inside.max(),
            "dominant_fraction_of_particle": (w.argmax(axis=0) == i)[mask].sum() / mask.sum(),
            "rich_region": {
                "voxels": int(rich.sum()),
                "mean_weight_fraction": w[i][rich].mean(),
                "centre_nz_nx_slice": [round(float(c), 1) for c in np.argwhere(rich).mean(axis=0)],
            },
        }
        for j in range(i + 1, len(maps.elements)):
            out["correlations"][f"{e}-{maps.elements[j]}"] = np.corrcoef(inside, w[j][mask])[0, 1]
    return out


@pytest.mark.parametrize("chunk_slices", [1, 8, 64])
def test_findings_and_comparison_in_pieces_match_the_definitions(tmp_path, chunk_slices):
    a, b = _maps(1), _maps(2)
    save(a, tmp_path / "a.h5", compression="gzip")
    save(b, tmp_path / "b.h5", compression="gzip")
    expected = _reference_findings(a)
    for source in (a, tmp_path / "a.h5"):  # in memory and in a file
        found = statistics.findings(source, chunk_slices=chunk_slices)
        assert found["particle_voxels"] == expected["particle_voxels"] and found["pixel_size_nm"] == 2.0
        for element, entry in expected["elements"].items():
            got = found["elements"][element]
            for key in ("mean_weight_fraction", "max_weight_fraction", "dominant_fraction_of_particle"):
                assert got[key] == pytest.approx(entry[key], rel=1e-12)
            assert got["rich_region"]["voxels"] == entry["rich_region"]["voxels"]
            assert got["rich_region"]["mean_weight_fraction"] == pytest.approx(
                entry["rich_region"]["mean_weight_fraction"], rel=1e-12
            )
            assert got["rich_region"]["centre_nz_nx_slice"] == entry["rich_region"]["centre_nz_nx_slice"]
        for pair, r in expected["correlations"].items():
            assert found["correlations"][pair] == pytest.approx(r, rel=1e-10)
    compared = statistics.compare(tmp_path / "a.h5", b, chunk_slices=chunk_slices)
    both = a.mask & b.mask
    for i, element in enumerate(a.elements):
        x, y = a.weight_fractions[i][both].astype(float), b.weight_fractions[i][both].astype(float)
        rich_a = both & (a.weight_fractions[i] >= np.quantile(x, 0.9))
        rich_b = both & (b.weight_fractions[i] >= np.quantile(y, 0.9))
        dice = 2 * (rich_a & rich_b).sum() / (rich_a.sum() + rich_b.sum())
        assert compared[element]["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-10)
        assert compared[element]["dice_rich"] == pytest.approx(dice, rel=1e-15)
        assert compared[element]["mean_a"] == pytest.approx(x.mean(), rel=1e-12)
    assert statistics.compare(a, a)["Fe"]["pearson"] == pytest.approx(1.0)


def test_summarise_gives_comparison_and_findings_exactly_reading_each_file_half_as_often(tmp_path, monkeypatch):
    from edstomo.stored import Stored

    a, b = _maps(1), _maps(2)
    save(a, tmp_path / "a.h5", compression="gzip")
    save(b, tmp_path / "b.h5", compression="gzip")
    reads = []
    read = Stored.read
    monkeypatch.setattr(Stored, "read", lambda self, start, stop: reads.append(start) or read(self, start, stop))
    files = {"one": tmp_path / "a.h5", "two": tmp_path / "b.h5"}
    comparison, found = statistics.summarise(files, chunk_slices=8)
    together = len(reads)
    expected = statistics.compare(*files.values(), chunk_slices=8)
    findings = {name: statistics.findings(path, chunk_slices=8) for name, path in files.items()}
    assert comparison == expected and found == findings  # the same values, bit for bit
    assert 2 * together == len(reads) - together
    from edstomo_microscope import slicewise

    reads.clear()
    monkeypatch.setattr(slicewise, "KEEP_MAX", 0)  # nothing kept: the quantiles take one more pass over the files
    assert statistics.summarise(files, chunk_slices=8) == (comparison, found)
    assert len(reads) == 3 * together // 2
    assert statistics.summarise({"one": a}) == ({}, {"one": statistics.findings(a)})


def test_constant_maps_have_no_correlation_and_empty_maps_no_rich_region():
    flat = CompositionMaps(np.full((2, 4, 4, 3), 0.5, dtype=np.float32), ["Fe", "S"], "1 nm")
    assert np.isnan(statistics.compare(flat, flat)["Fe"]["pearson"])
    assert np.isnan(statistics.findings(flat)["correlations"]["Fe-S"])
    empty = CompositionMaps(np.zeros((2, 4, 4, 3)), ["Fe", "S"], "1 nm")
    found = statistics.findings(empty)
    assert found["particle_voxels"] == 0 and "rich_region" not in found["elements"]["Fe"]
    assert found["elements"]["Fe"]["mean_weight_fraction"] == 0.0


def test_load_reads_a_range_of_slices_or_the_header(tmp_path):
    maps = _maps(3)
    save(maps, tmp_path / "m.h5", compression="gzip")
    part = load(tmp_path / "m.h5", slices=(5, 13))
    np.testing.assert_array_equal(part.weight_fractions, maps.weight_fractions[..., 5:13])
    np.testing.assert_array_equal(part.mask, maps.mask[..., 5:13])
    header = Stored(tmp_path / "m.h5").header()
    assert header.weight_fractions.shape == (3, 9, 8, 0) and header.threshold == 0.1
    with pytest.raises(ValueError, match="slices"):
        load(tmp_path / "m.h5", slices=(5, 40))


def _quantile_in_passes(parts: list[np.ndarray], q: float, keep: int = 0) -> tuple[float | None, int]:
    """statistics.Quantile fed ``parts`` pass after pass: (value, passes)."""
    quantile, passes = statistics.Quantile(q, keep), 0
    while quantile.pending:
        for part in parts:
            quantile.add(part)
        quantile.settle()
        passes += 1
    return quantile.value, passes


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=300),
    q=st.floats(0, 1),
    cuts=st.lists(st.integers(0, 300), max_size=4),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_a_quantile_in_passes_is_numpys_without_keeping_the_values(values, q, cuts, dtype):
    data = np.asarray(values, dtype=dtype)
    parts = np.split(data, sorted(c for c in cuts if c <= data.size))
    value, passes = _quantile_in_passes(parts, q)
    kept, once = _quantile_in_passes(parts, q, keep=data.nbytes)  # all values kept: one pass, the same value
    assert (kept, once) == (value, 1)
    partly = _quantile_in_passes(parts, q, keep=data.nbytes - 1)  # not all fit: the passes again
    assert partly == (value, passes)
    if not data.max() > 0:
        assert value is None and passes == 1
        return
    expected = np.quantile(data.astype(np.float64), q)
    assert value == pytest.approx(expected, rel=1e-15, abs=1e-300)
    assert passes == (2 if dtype == np.float32 else 4)
    ranks = np.sort(data.astype(np.float64))
    at = (data.size - 1) * q  # the order statistics are exact: at a whole rank the value is a datum
    if at == int(at):
        assert value == ranks[int(at)]


def test_a_quantile_sees_ties_zeros_and_signed_zeros():
    ties = [np.zeros(1000, np.float32), np.full(50, 0.25, np.float32), np.array([-0.0, 0.0, 1.0], np.float32)]
    everything = np.concatenate(ties).astype(np.float64)
    for q in (0.0, 0.5, 0.9, 0.96, 0.999, 1.0):
        assert _quantile_in_passes(ties, q)[0] == np.quantile(everything, q) == _quantile_in_passes(ties, q, 10**6)[0]
    quantile = statistics.Quantile(0.5)
    quantile.add(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="one type"):
        quantile.add(np.ones(3, np.float64))
