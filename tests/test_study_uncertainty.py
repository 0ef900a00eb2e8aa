"""The calibration study 'uncertainty' at a reduced size (2 seeds, 3 replicas, the low level)."""

from __future__ import annotations

import json

import pytest
from edstomo import figures, plugins
from edstomo.errors import OptionError
from edstomo.study import ResultsTable
from edstomo_plugins.studies.uncertainty import SUMMARY_KEYS


def test_reduced_run_writes_the_summary_table_and_figure(tmp_path):
    pytest.importorskip("matplotlib")
    study = plugins.study("uncertainty")(levels=["low"], seeds=2, replicas=3, iterations=60)
    summary = study.run(tmp_path)
    assert list(summary) == ["low"] and list(summary["low"]) == list(SUMMARY_KEYS)
    low = summary["low"]
    assert 0.3 < low["voxel_coverage_1sigma"] < 0.95  # 3 replicas: a rough σ, but a σ of the right size
    assert low["voxel_coverage_1sigma_sd_only"] <= low["voxel_coverage_1sigma"]
    assert 0 <= low["region_coverage_95"] <= 1
    assert 0.2 < low["mean_sigma_wt"] / low["mean_error_wt"] < 5
    assert 0 < low["r_relative_sd_bootstrap"] < 0.1 and 0 < low["r_relative_sd_seeds"] < 0.1
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    table = ResultsTable.from_csv(tmp_path / "coverage.csv")
    assert len(table) == 2 and {row["seed"] for row in table.rows} == {0, 1}
    description, dpi = figures.read_description(tmp_path / "low_uncertainty.png")
    assert figures.problems(description, dpi=dpi) == []


@pytest.mark.parametrize(("options", "match"), [({"replicas": 1}, "replicas"), ({"seeds": 1}, "seeds")])
def test_bad_options_are_refused(options, match):
    with pytest.raises(OptionError, match=match):
        plugins.study("uncertainty")(**options)
