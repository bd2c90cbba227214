"""Cells read in part: one note per column and problem, naming the rows, for a table's ``notes``.

A reader that leaves one bad cell empty, or drops (or resizes) a layer of it,
instead of refusing the whole table, records each cell here; ``lines`` words
them as the notes ``panels info``, the workspace card and reports show
("column `image`: mask layer `ground_truth` dropped on 3 rows (2, 5, 9): shape
(288, 432, 4) is not HxW class ids").
"""

from __future__ import annotations

__all__ = ["CellNotes", "CellWarning"]

ROWS_SHOWN = 10
"""Rows a note names before it says "and N more"."""

REASONS_SHOWN = 3
"""Different reasons a note gives before it says how many others there are."""


class CellWarning(RuntimeWarning):
    """A table opened with some cells read in part; its ``notes`` say which and why."""


def _named(rows: list[int]) -> str:
    """``"2, 5, 9"``, with at most ``ROWS_SHOWN`` rows named."""
    shown = ", ".join(str(r) for r in rows[:ROWS_SHOWN])
    return shown + (f" and {len(rows) - ROWS_SHOWN} more" if len(rows) > ROWS_SHOWN else "")


class CellNotes:
    """Problems of single cells, gathered by column and problem (``what``) with their rows."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], dict[str, list[int]]] = {}

    def add(self, column: str, row: int, what: str, detail: str) -> None:
        """Row ``row`` of ``column`` had ``what`` done to it (``mask layer `x` dropped``),
        because of (or as) ``detail``."""
        self._found.setdefault((column, what), {}).setdefault(detail, []).append(row)

    def __bool__(self) -> bool:
        return bool(self._found)

    def lines(self) -> list[str]:
        """One note per column and problem, in the order they were first met."""
        notes = []
        for (column, what), details in self._found.items():
            rows = sorted({row for rows in details.values() for row in rows})
            counted = f"{len(rows)} row{'s' if len(rows) != 1 else ''} ({_named(rows)})"
            reasons = [
                reason if len(details) == 1 else f"{reason} (row {_named(sorted(set(on)))})"
                for reason, on in list(details.items())[:REASONS_SHOWN]
            ]
            if len(details) > REASONS_SHOWN:
                reasons.append(f"and {len(details) - REASONS_SHOWN} other reasons")
            notes.append(f"column `{column}`: {what} on {counted}: {'; '.join(reasons)}")
        return notes
