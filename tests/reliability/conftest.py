"""The reliability suite's figures: each case records what it tried; when
``$GMS_RELIABILITY_JSON`` names a file, the session writes them there (``bench/reliability.py``
runs this suite and turns that file into RELIABILITY.md)."""

from __future__ import annotations

import json
import os

import pytest


class Figures(dict):
    """Case name -> its figures: counts add up over tests, ``worst_*`` keep the largest."""

    def record(self, case: str, **values) -> None:
        entry = self.setdefault(case, {})
        for key, value in values.items():
            if key in entry and key.startswith("worst_"):
                entry[key] = max(entry[key], value)
            elif key in entry and isinstance(value, (int, float)) and not isinstance(value, bool):
                entry[key] += value
            else:
                entry[key] = value


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Figures:
    yield _FIGURES
    out = os.environ.get("GMS_RELIABILITY_JSON")
    if out and _FIGURES:
        old = {}
        if os.path.exists(out):
            with open(out) as f:
                old = json.load(f)
        old.update(_FIGURES)
        with open(out, "w") as f:
            json.dump(old, f, indent=2, sort_keys=True)
