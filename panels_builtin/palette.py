"""The colours of categories and series shared by the built-in panels."""

from __future__ import annotations

__all__ = ["category_palette"]


def category_palette(n: int) -> list[str]:
    """``n`` distinct colours for categories or series (Category10, Category20, then Turbo)."""
    from bokeh.palettes import Category10, Category20, turbo

    if n <= 0:
        return []
    if n <= 10:
        return list(Category10[10][:n])
    if n <= 20:
        return list(Category20[20][:n])
    return list(turbo(n))
