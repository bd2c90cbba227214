"""What the readers share: the text of an exception for an error message."""

from __future__ import annotations

__all__ = ["exception_text"]


def exception_text(exc: BaseException) -> str:
    """An exception's text without KeyError's added quotes."""
    return str(exc.args[0]) if exc.args else str(exc)
