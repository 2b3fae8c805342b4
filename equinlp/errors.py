"""The project's own errors: each says what is wrong, where, and how to fix it, in one line.

The command line prints an ``EquinlpError`` as ``equinlp: error: <message>`` and exits non-zero (the
traceback only with ``--debug``). They subclass ``ValueError`` so library callers can catch them as such.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EquinlpError(ValueError):
    """A bad input or a state on disk that the user can fix; the message names the culprit and the fix."""


class MissingData(EquinlpError, FileNotFoundError):
    """A data set or file a command needs is not where it looks (the message says how to get it)."""


class UnknownName(EquinlpError):
    """A name that is not among the known ones: ``unknown method 'equitun'; did you mean 'equitune'? (choose from …)``."""

    def __init__(self, what: str, name: object, known: Iterable[str], hint: str = "") -> None:
        known = [str(k) for k in known]
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        hint = f" {hint}" if hint else ""
        super().__init__(f"unknown {what} {name!r}{suggestion} (choose from {', '.join(known)}){hint}")
        self.name = name


def check_name(what: str, name: str, known: Iterable[str], hint: str = "") -> str:
    """``name`` if it is one of ``known``, else :class:`UnknownName` (with the closest match)."""
    known = list(known)
    if name not in known:
        raise UnknownName(what, name, known, hint)
    return name


def check_names(what: str, names: Iterable[str], known: Iterable[str], hint: str = "") -> tuple[str, ...]:
    """Every one of ``names`` checked by :func:`check_name`; returns them as a tuple."""
    known = list(known)
    return tuple(check_name(what, name, known, hint) for name in names)
