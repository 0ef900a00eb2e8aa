import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edstomo.interfaces import Metric, Phantom, Solver
from edstomo.registry import KINDS, Registry, UnknownPluginError, plugins

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_are_found_through_entry_points():
    infos = {(i.kind, i.name): i for i in plugins.available()}
    for key in [("physics", "table"), ("phantom", "core-shell"), ("phantom", "arrays"), ("forward", "thin-film")]:
        assert key in infos
        assert "edstomo" in infos[key].origin  # declared by the edstomo distribution's entry points
        assert infos[key].description


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(UnknownPluginError, match=r"phantom: unknown plugin 'nope'; available: .*core-shell"):
        plugins.phantom("nope")
    with pytest.raises(UnknownPluginError, match="unknown plugin kind"):
        plugins.get("colour", "red")


def test_every_plugin_subclasses_the_interface_of_its_kind():
    for info in plugins.available():
        assert issubclass(info.cls, KINDS[info.kind])
        assert info.cls.name == info.name


def test_runtime_registration_and_clashes():
    registry = Registry(group="edstomo.no-such-group")

    class Mean(Metric):
        """Difference of means."""

        name = "mean-difference"

        def compute(self, estimate, reference):
            return float(np.mean(estimate) - np.mean(reference))

    registry.register(Mean)
    assert registry.metric("mean-difference") is Mean
    assert registry.available("metric")[0].description == "Difference of means."
    assert Mean()(np.ones(3), np.zeros(3)) == 1.0

    class Other(Metric):
        name = "mean-difference"

        def compute(self, estimate, reference):
            return 0.0

    with pytest.raises(ValueError, match="clashes"):
        registry.register(Other)
    with pytest.raises(TypeError, match="must subclass"):
        registry.register(int)  # type: ignore[arg-type]


def test_interfaces_cannot_be_instantiated_without_their_methods():
    class Incomplete(Solver):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]

    class NoName(Phantom):
        def generate(self, experiment):
            raise NotImplementedError

    with pytest.raises(TypeError, match="no 'name'"):
        Registry().register(NoName)


def test_framework_imports_no_plugin():
    code = "import sys, edstomo, edstomo.cli; print(any(m.startswith('edstomo_plugins') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_third_party_plugin_template_installs_and_is_discovered(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "metric-template"),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    code = (
        "import numpy as np, edstomo as et\n"
        "m = et.plugins.metric('max-abs-error')()\n"
        "print(m(np.array([1.0, 5.0]), np.array([0.0, 2.0])))\n"
        "print([i.origin for i in et.plugins.available('metric') if i.name == 'max-abs-error'][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    value, origin = out.split("\n")[:2]
    assert float(value) == 3.0
    assert origin.startswith("edstomo-toy-metric")
    listing = subprocess.run(
        [sys.executable, "-m", "edstomo.cli", "plugins", "metric"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert "max-abs-error" in listing
