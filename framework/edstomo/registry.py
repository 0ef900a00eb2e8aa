"""Plugin discovery through the entry-point group ``edstomo.plugins``.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."edstomo.plugins"]
    "metric.my-metric" = "my_package.module:MyMetric"

The entry point's name is ``<kind>.<name>``; its object is a class that
subclasses the interface of that kind (:mod:`edstomo.interfaces`) and whose
``name`` attribute equals ``<name>``. The built-in plugins are declared the
same way by edstomo's own distribution. Plugins can also be registered at run
time with :meth:`Registry.register`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

from .errors import EdstomoError
from .interfaces import ForwardModel, Metric, Phantom, PhysicsModel, Plugin, Quantifier, Solver, Study

GROUP = "edstomo.plugins"

#: Plugin kinds and their interfaces.
KINDS: dict[str, type[Plugin]] = {
    "physics": PhysicsModel,
    "phantom": Phantom,
    "forward": ForwardModel,
    "solver": Solver,
    "quantifier": Quantifier,
    "metric": Metric,
    "study": Study,
}


class UnknownPluginError(EdstomoError, LookupError):
    """No plugin of that kind has that name (a user error: edstomo's own, and a LookupError as before)."""


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: kind, name, one-line description, and where it came from."""

    kind: str
    name: str
    description: str
    origin: str
    cls: type[Plugin]


class Registry:
    """The plugins available in this interpreter, by kind and name."""

    def __init__(self, group: str = GROUP):
        self.group = group
        self._plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        self._loaded = False

    def register(self, cls: type[Plugin], origin: str = "runtime") -> type[Plugin]:
        """Register a plugin class (usable as a class decorator)."""
        kind = getattr(cls, "kind", None)
        if kind not in KINDS or not (isinstance(cls, type) and issubclass(cls, KINDS[kind])):
            raise TypeError(
                f"plugin {cls!r} must subclass one of the interfaces {[k.__name__ for k in KINDS.values()]}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"plugin {cls.__qualname__} has no 'name' class attribute")
        existing = self._plugins[kind].get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f"{kind} plugin {name!r} from {origin} clashes with the one from {existing.origin}")
        self._plugins[kind][name] = PluginInfo(kind, name, cls.summary(), origin, cls)
        return cls

    def load_entry_points(self) -> None:
        """Import every entry point of the group (once). A plugin that fails to load is
        skipped with a warning naming the entry point."""
        if self._loaded:
            return
        self._loaded = True
        for point in entry_points(group=self.group):
            origin = f"{point.dist.name if point.dist else '?'} ({point.value})"
            try:
                cls = point.load()
                kind, _, name = point.name.partition(".")
                self.register(cls, origin)
                if (kind, name) != (cls.kind, cls.name):
                    warnings.warn(f"entry point {point.name!r} names a {cls.kind} plugin {cls.name!r}", stacklevel=2)
            except Exception as error:  # a broken third-party plugin must not break edstomo
                warnings.warn(f"plugin entry point {point.name!r} from {origin} failed to load: {error}", stacklevel=2)

    def get(self, kind: str, name: str) -> type[Plugin]:
        """The plugin class of a kind and name; an error lists the available names."""
        if kind not in KINDS:
            raise UnknownPluginError(f"kind: unknown plugin kind {kind!r}; kinds are {list(KINDS)}")
        self.load_entry_points()
        try:
            return self._plugins[kind][name].cls
        except KeyError:
            available = ", ".join(sorted(self._plugins[kind])) or "none"
            raise UnknownPluginError(f"{kind}: unknown plugin {name!r}; available: {available}") from None

    def available(self, kind: str | None = None) -> list[PluginInfo]:
        """Registered plugins (of one kind, or all), sorted by kind and name."""
        self.load_entry_points()
        kinds = list(KINDS) if kind is None else [kind]
        return [self._plugins[k][n] for k in kinds for n in sorted(self._plugins[k])]

    def names(self, kind: str) -> list[str]:
        return [info.name for info in self.available(kind)]

    def default(self, kind: str, requires: frozenset[str] | set[str] | None = None) -> type[Plugin]:
        """The plugin of a kind that declares ``default = True`` (among solvers with exactly ``requires``).

        Raises
        ------
        UnknownPluginError
            When no plugin, or more than one, is the default (naming them).
        """
        candidates = [
            info.cls
            for info in self.available(kind)
            if info.cls.default and (requires is None or getattr(info.cls, "requires", None) == frozenset(requires))
        ]
        if len(candidates) != 1:
            wanted = f" requiring {sorted(requires)}" if requires is not None else ""
            found = [c.name for c in candidates] or "none"
            raise UnknownPluginError(f"{kind}: one default plugin{wanted} is needed; found {found}; name one")
        return candidates[0]

    def quantifier_for(self, factor: str | None) -> type[Quantifier]:
        """The quantifier that accepts maps proportional to ``factor`` (``Volume.factor``, e.g. ``"f_A"``)."""
        if factor is None:
            raise UnknownPluginError(
                "quantifier: the maps record no factor (f_A or z_A): they are not line maps of a known scale"
            )
        matches = [info.cls for info in self.available("quantifier") if getattr(info.cls, "accepts", None) == factor]
        preferred = [cls for cls in matches if cls.default] or matches
        if len(preferred) != 1:
            names = [cls.name for cls in matches] or "none"
            raise UnknownPluginError(f"quantifier: one quantifier must accept maps of factor {factor!r}; found {names}")
        return preferred[0]  # type: ignore[return-value]

    def physics(self, name: str) -> type[PhysicsModel]:
        return self.get("physics", name)  # type: ignore[return-value]

    def phantom(self, name: str) -> type[Phantom]:
        return self.get("phantom", name)  # type: ignore[return-value]

    def forward(self, name: str) -> type[ForwardModel]:
        return self.get("forward", name)  # type: ignore[return-value]

    def solver(self, name: str) -> type[Solver]:
        return self.get("solver", name)  # type: ignore[return-value]

    def quantifier(self, name: str) -> type[Quantifier]:
        return self.get("quantifier", name)  # type: ignore[return-value]

    def metric(self, name: str) -> type[Metric]:
        return self.get("metric", name)  # type: ignore[return-value]

    def study(self, name: str) -> type[Study]:
        return self.get("study", name)  # type: ignore[return-value]


#: The registry used by ``edstomo.plugins``.
plugins = Registry()
