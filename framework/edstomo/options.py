"""Plugin options, declared once as a pydantic model and used everywhere.

Every plugin class has an ``Options`` model (a subclass of
:class:`PluginOptions`) that lists its parameters with types, defaults,
ranges, units and help text::

    class Options(IterativeOptions):
        alpha: float = Field(0.8, ge=0, lt=1, description="weight α of the HAADF term")

The same model validates keyword arguments in Python
(``plugins.solver("my-solver")(alpha=0.8)``), ``--set alpha=0.8`` on the command
line, and the ``options:`` mapping of a YAML/JSON run file; ``--help`` lists it
(:func:`describe`).  A bad option raises one :class:`~edstomo.errors.OptionError`
naming the plugin, the option, the value and what it takes.

Values from text (``--set key=value``) are read as YAML first (:func:`parse_assignment`),
so ``iterations=50``, ``nonnegativity=false``, ``channels=[Ag_La, Au_Ma]``,
``ratios={Ag_La: 805, Au_Ma: 987}`` and ``solid_angle=0.7 sr`` all work.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from .errors import OptionError
from .units import QuantityUnit

__all__ = ["OptionInfo", "PluginOptions", "describe", "parse_assignment", "parse_assignments", "validate"]


class PluginOptions(BaseModel):
    """Base of every plugin's options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, validate_default=True)


@dataclass(frozen=True)
class OptionInfo:
    """One option as shown to users: name, type, default and help."""

    name: str
    type: str
    default: str
    help: str


def _type_name(annotation: Any) -> str:
    """A short readable name of a type annotation (``int``, ``float | None``, ``'strip' | 'joseph'``)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        bounds = _bounds(metadata)
        return _type_name(base) + (f" ({bounds})" if bounds else "")
    if origin is typing.Literal:
        return " | ".join(repr(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _takes_bool(annotation: Any) -> bool:
    """Whether a type annotation admits booleans (``bool`` itself, or a union or container that holds it)."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(argument) for argument in typing.get_args(annotation))


def _numeric_only(annotation: Any) -> bool:
    """Whether an annotation admits numbers (and None, and the words of a Literal member) but no other text."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _numeric_only(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [
            a for a in typing.get_args(annotation) if a is not type(None) and typing.get_origin(a) is not typing.Literal
        ]
        return bool(members) and all(_numeric_only(a) for a in members)
    return False


def _words(annotation: Any) -> list[str]:
    """The text values of the Literal members of a union (e.g. ``["auto"]`` of ``int | Literal["auto"]``)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return []
    members = [a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal]
    return [v for a in members for v in typing.get_args(a) if isinstance(v, str)]


def _bounds(metadata: Iterable[Any]) -> str:
    """Numeric bounds in pydantic/annotated-types metadata as text, e.g. ``">= 0, < 1"``."""
    parts = []
    for item in metadata:
        nested = getattr(item, "metadata", None)
        if isinstance(nested, list):  # a FieldInfo inside Annotated
            inner = _bounds(nested)
            parts.extend([inner] if inner else [])
            continue
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def describe(model: type[PluginOptions]) -> list[OptionInfo]:
    """The options of a model, in declaration order, for help texts and documentation."""
    infos = []
    for name, field in model.model_fields.items():
        kind = _type_name(field.annotation)
        unit = next((item.unit for item in field.metadata if isinstance(item, QuantityUnit)), None)
        if unit is not None:
            kind = kind.replace("Quantity", f"quantity in {unit}")
        bounds = _bounds(field.metadata)
        if bounds:  # bounds of an optional number belong to the number: "int (>= 1) | None"
            number, optional, _ = kind.partition(" | None")
            kind = f"{number} ({bounds}){' | None' if optional else ''}"
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            default = _show(value)
        infos.append(OptionInfo(name, kind, default, field.description or ""))
    return infos


def _show(value: Any) -> str:
    if hasattr(value, "units") and hasattr(value, "magnitude"):
        return f"{value:~P}"
    return repr(value)


def _expected(model: type[PluginOptions], name: str, message: str = "") -> str:
    """What an option takes, for an error message: a specific reason (if any), then its type, bounds and default."""
    field = model.model_fields.get(name)
    if field is None:
        return message
    info = next(i for i in describe(model) if i.name == name)
    reason = message.removeprefix("Value error, ")
    return f"{reason + '; ' if reason else ''}expected {info.type} (default {info.default})"


#: pydantic error types whose message only restates the type or bounds that ``_expected`` shows anyway.
_PLAIN_ERRORS = ("literal_error", "greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number")


def validate(owner: str, model: type[PluginOptions], values: Mapping[str, Any]) -> PluginOptions:
    """Validate option values against a model, raising :class:`OptionError` on the first problem.

    Parameters
    ----------
    owner : str
        Who the options are for, e.g. ``"solver 'my-solver'"`` (appears in errors).
    model : type of PluginOptions
        The options model.
    values : mapping
        Option names and values (Python values, or text parsed by :func:`parse_assignment`).
    """
    known = list(model.model_fields)
    for name, value in values.items():
        if name not in model.model_fields:
            expected = f"not an option of {owner}; its options are {known}" if known else f"{owner} takes no options"
            raise OptionError(owner, str(name), value, expected)
        annotation = model.model_fields[name].annotation
        if isinstance(value, bool) and not _takes_bool(annotation):
            raise OptionError(owner, name, value, _expected(model, name, "a boolean is not accepted here"))
        if annotation in (bool, bool | None) and not isinstance(value, (bool, type(None))):
            raise OptionError(owner, name, value, "expected true or false")
        if isinstance(value, str) and _numeric_only(annotation) and value not in _words(annotation):
            words = " or ".join(repr(w) for w in _words(annotation))
            reason = f"text is not a number{f' (nor {words})' if words else ''}"
            raise OptionError(owner, name, value, _expected(model, name, reason))
    try:
        return model(**values)
    except ValidationError as error:
        first = error.errors()[0]
        prefix = first["msg"].removeprefix("Value error, ").split(":")[0]
        name = str(first["loc"][0]) if first["loc"] else prefix if prefix in model.model_fields else "options"
        value = values.get(name, first.get("input"))
        reason = "" if first["type"] in _PLAIN_ERRORS or first["type"].endswith(("_type", "_parsing")) else first["msg"]
        # inside a list or mapping: say where (pydantic also puts the member of a union in the location,
        # which is no place: e.g. 'constrained-int' of int | 'auto')
        path = [p for p in first["loc"][1:] if isinstance(p, int) or str(p).replace("_", "").isalnum()]
        member = name in model.model_fields and bool(_words(model.model_fields[name].annotation))
        if path and not member:
            where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
            reason = f"at {name}{where}: {(reason or first['msg']).removeprefix('Value error, ')}"
        raise OptionError(owner, name, value, _expected(model, name, reason)) from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)``, the value read as YAML (numbers, booleans, lists, mappings, text).

    Raises
    ------
    OptionError
        When the text has no ``=`` or no key.
    """
    key, sep, value = str(text).partition("=")
    owner, dot, option = key.strip().rpartition(".")
    key = f"{owner}{dot}{option.replace('-', '_')}"  # option names use "_"; plugin names keep their "-"
    if not sep or not key:
        raise OptionError("--set", str(text), text, "expected KEY=VALUE, e.g. iterations=50")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return key, value.strip()
    if isinstance(parsed, str):
        try:
            return key, float(parsed)  # YAML 1.1 reads 1e30 as text
        except ValueError:
            pass
    return key, parsed


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Several ``key=value`` texts as a dict (a key given twice keeps the last value)."""
    return dict(parse_assignment(item) for item in items)
