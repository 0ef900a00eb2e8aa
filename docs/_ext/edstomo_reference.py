"""Sphinx extension: generate the API and command-line reference pages before the sources are read.

* ``_generated/api/<module>.rst`` — one page per public module of the packages in
  :data:`PACKAGES` (every module and subpackage whose name does not start with ``_``,
  found by walking the installed packages, so new modules appear without editing
  the docs), each an ``automodule`` of the module's public names (its ``__all__``);
  ``_generated/api/index.rst`` lists them.
* ``_generated/cli.md`` — every sub-command's ``--help`` as the parser prints it
  (:func:`edstomo.cli.build_parser`, which includes the commands installed packages
  declare in the entry-point group ``edstomo.commands``).

The generated folder is rebuilt at every build and is not kept in git.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

#: Packages whose public modules get a reference page, with the page group's title.
PACKAGES = {
    "edstomo": "Core (edstomo)",
    "edstomo_microscope": "Microscope workflow (edstomo_microscope)",
    "edstomo_plugins": "Built-in plugins (edstomo_plugins)",
}


def public_modules(package: str) -> list[str]:
    """The package and every module or subpackage below it whose dotted name has no part starting with ``_``."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _module_page(name: str, top: bool) -> str:
    """``automodule`` of the module's public names (``__all__``), documented or not; a package's top page also
    documents the names it imports from its modules (``import edstomo as et; et.TiltSeries``)."""
    title = f"``{name}``"
    options = "   :undoc-members:\n" + ("   :imported-members:\n" if top else "")
    page = f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n{options}"
    # autodoc documents data (constants, instances) only where it is assigned: name the re-exported ones here
    module = importlib.import_module(name)
    data = [n for n in getattr(module, "__all__", []) if _is_data(getattr(module, n)) and not _assigned_in(module, n)]
    for item in data:
        page += f"\n.. autodata:: {name}.{item}\n   :no-value:\n\n   ``{type(getattr(module, item)).__name__}``"
        page += f" (also in :mod:`{_origin(module, item)}`)\n" if _origin(module, item) else "\n"
    return page


def _is_data(value: Any) -> bool:
    return not (inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value))


def _assigned_in(module: Any, name: str) -> bool:
    """Whether ``name = ...`` appears at the top level of the module's source (then automodule documents it)."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    return re.search(rf"^{re.escape(name)}\s*(:[^=]*)?=", source, flags=re.M) is not None


def _origin(module: Any, name: str) -> str | None:
    """The public submodule of ``module`` that assigns ``name`` (for a link), if any."""
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.startswith("_"):
            continue
        child = importlib.import_module(f"{module.__name__}.{info.name}")
        if getattr(child, name, None) is getattr(module, name) and _assigned_in(child, name):
            return child.__name__
    return None


def write_api(folder: Path) -> list[str]:
    """Write the API pages into ``folder``; returns the modules documented."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.rst"):
        old.unlink()
    documented = []
    sections = []
    for package, heading in PACKAGES.items():
        modules = public_modules(package)
        documented += modules
        for name in modules:
            (folder / f"{name}.rst").write_text(_module_page(name, name == package), encoding="utf-8")
        entries = "\n".join(f"   {name}" for name in modules)
        sections.append(f"{heading}\n{'-' * len(heading)}\n\n.. toctree::\n   :maxdepth: 1\n\n{entries}\n")
    intro = (
        "API reference\n=============\n\n"
        "Generated from the docstrings of every public module (its ``__all__``). The names that\n"
        "``import edstomo as et`` offers are on the page of ``edstomo``.\n\n"
    )
    (folder / "index.rst").write_text(intro + "\n".join(sections), encoding="utf-8")
    return documented


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """The command-line reference in Markdown: the main help and each sub-command's help."""
    from edstomo.cli import build_parser

    parser = build_parser()
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    parts = [
        "# Command-line reference\n",
        "Generated from the parser at every documentation build (`edstomo.cli.build_parser`, with the "
        "commands that installed packages declare in the entry-point group `edstomo.commands`); "
        "`edstomo COMMAND --help` prints the same.\n",
        "```text",
        parser.format_help().rstrip(),
        "```\n",
    ]
    for name, sub in sorted(_subcommands(parser).items()):
        sub.formatter_class = _wide(sub.formatter_class)
        parts += [f"## `edstomo {name}`\n", "```text", sub.format_help().rstrip(), "```\n"]
    return "\n".join(parts)


def _wide(formatter: Any) -> Any:
    return lambda prog: formatter(prog, width=100)


def generate(app: Any) -> None:
    folder = Path(app.srcdir) / "_generated"
    write_api(folder / "api")
    (folder / "cli.md").write_text(cli_reference(), encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True}
