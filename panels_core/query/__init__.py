"""Queries: the filter language, the Query model and the engines that run them."""

from __future__ import annotations

from panels_core.query.model import CompareWith, JoinSpec, Query, SortKey

__all__ = ["CompareWith", "JoinSpec", "Query", "SortKey"]
