"""edstomo's own error types.

Every error that bad user input can cause is one of these, so that the command
line can tell a user's mistake (a one-line message, exit code 1) from a bug
(a traceback). Each subclasses :class:`ValueError`, so code that catches
``ValueError`` keeps working.

Messages name the parameter (or file), the value given and what was expected,
e.g. ``"beam_energy: 100 has no unit; expected a quantity in keV"``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EdstomoError", "InputError", "OptionError", "OutputPathError"]


class EdstomoError(ValueError):
    """Base of every error that edstomo raises for bad input."""


class InputError(EdstomoError):
    """A value, array or file given to edstomo is not acceptable (shape, unit, range, content)."""


class OutputPathError(EdstomoError):
    """An output path cannot be written safely (it is an input, not a regular file, or exists)."""


class OptionError(EdstomoError):
    """A plugin option is unknown or its value is not acceptable.

    Parameters
    ----------
    plugin : str
        ``"<kind> '<name>'"``, e.g. ``"solver 'my-solver'"``.
    option : str
        The option's name.
    value : Any
        The value given (shown with ``repr``).
    expected : str
        What the option takes, e.g. ``"an integer >= 0"``.
    """

    def __init__(self, plugin: str, option: str, value: Any, expected: str) -> None:
        self.plugin, self.option, self.value, self.expected = plugin, option, value, expected
        super().__init__(f"{plugin}: option {option!r} = {value!r}: {expected}")
