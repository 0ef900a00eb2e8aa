"""Command-line plumbing shared by every sub-command: plugin choice and plugin options.

A command names the plugin *slots* it uses (e.g. ``solver``; or ``physics``,
``phantom`` and ``forward``).  For each slot it gets ``--<slot> NAME``
(default: the registry's default plugin of that kind), and the command gets

* ``--set KEY=VALUE`` (repeatable): an option of the command's main slot, or
  ``--set SLOT.KEY=VALUE`` for another slot; values are read as YAML
  (:func:`edstomo.options.parse_assignment`);
* ``--options FILE``: a YAML/JSON file ``{SLOT: {name: NAME, options: {...}}}``
  (a run file; ``--set`` wins over it, ``--<slot>`` over its names).

Every option is validated by the plugin's own ``Options`` model, so the
command line holds no plugin-specific code; ``--help`` lists the options of
the plugins named on the command line (:func:`options_help`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, OptionError
from .options import describe, parse_assignment
from .registry import UnknownPluginError, plugins

__all__ = ["HelpFormatter", "PluginSlot", "add_plugin_arguments", "chosen_plugins", "options_help", "read_run_file"]


@dataclass(frozen=True)
class PluginSlot:
    """A place for one plugin in a command: the option ``--<slot>`` chooses a plugin of ``kind``.

    ``requires`` narrows the default to the plugin of that kind with exactly these
    data needs (e.g. solvers that need only EDS data).
    """

    slot: str
    kind: str
    requires: frozenset[str] | None = None

    def default(self) -> str | None:
        """The name of the default plugin of this slot, or None when there is no single one."""
        try:
            return plugins.default(self.kind, self.requires).name
        except UnknownPluginError:
            return None


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts as usual but keeps texts with line breaks (option tables) as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def read_run_file(path: str | Path) -> dict[str, Any]:
    """A run file (YAML or JSON) as a mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)  # JSON: much faster
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: is not UTF-8 text; expected YAML or JSON") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML/JSON ({str(error).splitlines()[0]})") from None
    if content is None:
        raise InputError(f"{path}: the file is empty; expected a mapping of sections (or an experiment)")
    if not isinstance(content, Mapping):
        raise InputError(f"{path}: expected a mapping of sections, got {type(content).__name__}")
    return dict(content)


def add_plugin_arguments(parser: argparse.ArgumentParser, slots: Sequence[PluginSlot]) -> None:
    """Add ``--<slot> NAME`` for each slot, ``--set`` and ``--options`` to a sub-command's parser."""
    for slot in slots:
        default = slot.default()
        shown = f" (default: {default})" if default else ""
        parser.add_argument(
            f"--{slot.slot}",
            metavar="NAME",
            help=f"{slot.kind} plugin{shown}; see 'edstomo plugins {slot.kind}'",
        )
    main = slots[0].slot
    others = ", ".join(s.slot for s in slots[1:])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a plugin option, e.g. iterations=50 (the {main}'s)"
        + (f" or SLOT.KEY=VALUE for {others}" if others else "")
        + "; repeatable",
    )
    parser.add_argument(
        "--options", metavar="FILE", help="YAML/JSON run file: {SLOT: {name: NAME, options: {KEY: VALUE}}}"
    )


def chosen_plugins(
    args: argparse.Namespace, slots: Sequence[PluginSlot], sections: Mapping[str, Any] | None = None
) -> dict[str, tuple[type, dict[str, Any]]]:
    """The plugin class and option values of every slot, from ``--<slot>``, ``--options`` and ``--set``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments with ``set``, ``options`` and one attribute per slot.
    slots : sequence of PluginSlot
        The command's slots; the first is the one undotted ``--set`` keys go to.
    sections : mapping, optional
        Run-file sections from elsewhere (e.g. the experiment file); ``--options`` wins over them.

    Returns
    -------
    dict
        ``{slot: (plugin class, options)}``; options are not yet validated
        (the plugin validates them when it is made).
    """
    names = {slot.slot for slot in slots}
    source = getattr(args, "options", None) or "run file"
    run = {**(sections or {}), **(read_run_file(args.options) if getattr(args, "options", None) else {})}
    unknown = [key for key in run if key not in names]
    if unknown:
        raise InputError(f"{source}: sections {unknown} are not plugin slots of this command; slots: {sorted(names)}")
    chosen: dict[str, tuple[type, dict[str, Any]]] = {}
    for slot in slots:
        section = run.get(slot.slot) or {}
        if isinstance(section, str):
            section = {"name": section}
        if not isinstance(section, Mapping) or set(section) - {"name", "options"}:
            raise InputError(f"{source}: section {slot.slot!r} must hold 'name' and/or 'options'")
        name = getattr(args, slot.slot, None) or section.get("name") or plugins.default(slot.kind, slot.requires).name
        cls = plugins.get(slot.kind, name)
        options = dict(section.get("options") or {}) if section.get("name") in (None, name) else {}
        chosen[slot.slot] = (cls, options)
    for item in args.set:
        key, value = parse_assignment(item)
        target, dot, option = key.partition(".")
        if dot and target in names:
            chosen[target][1][option] = value
        elif dot:
            raise OptionError("--set", key, value, f"{target!r} is not a plugin slot of this command ({sorted(names)})")
        else:
            chosen[slots[0].slot][1][key] = value
    return chosen


def options_help(kind: str, name: str) -> str:
    """The options of one plugin as an indented table (for ``--help`` and ``edstomo plugins KIND NAME``)."""
    cls = plugins.get(kind, name)
    rows = describe(cls.Options)
    if not rows:
        return f"{kind} {name!r} has no options."
    lines = [f"options of {kind} {name!r} (--set KEY=VALUE):"]
    for row in rows:
        lines.append(f"  {row.name} : {row.type} = {row.default}")
        if row.help:
            lines.append(f"      {row.help}")
    return "\n".join(lines)


def selected_names(argv: Sequence[str], slots: Sequence[PluginSlot]) -> dict[str, str]:
    """The plugin named for each slot in raw arguments (``--slot NAME`` or ``--slot=NAME``), else the default."""
    found: dict[str, str] = {}
    for slot in slots:
        flag = f"--{slot.slot}"
        for index, token in enumerate(argv):
            if token == flag and index + 1 < len(argv):
                found[slot.slot] = argv[index + 1]
            elif token.startswith(flag + "="):
                found[slot.slot] = token.partition("=")[2]
        if slot.slot not in found and slot.default() is not None:
            found[slot.slot] = slot.default()
    return found


def slots_epilog(argv: Sequence[str], slots: Sequence[PluginSlot]) -> str:
    """The options of the plugins a command line names (or the defaults), for the sub-command's ``--help``."""
    parts = []
    for slot in slots:
        name = selected_names(argv, [slot]).get(slot.slot)
        if name is None:
            continue
        try:
            parts.append(options_help(slot.kind, name))
        except UnknownPluginError as error:
            parts.append(str(error))
    return "\n\n".join(parts)
