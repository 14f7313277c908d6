"""Looks shared by the tabs: one palette for the models of a comparison and for candidates."""

from __future__ import annotations

#: one colour per model (playground) or candidate (sequences), in order; cycled when there are more
COLORS = ["#4c9be8", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7"]
