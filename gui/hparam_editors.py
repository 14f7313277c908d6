"""Editors for a model's hyperparameters (``HParam``): one widget per kind, its value and its
"changed" signal. Shared by the Training tab's panel and the density playground."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox, QWidget

from core.protocol import HParam


def make_editor(h: HParam) -> QWidget:
    """A check box, combo box or spin box for ``h``, at its default, named ``hp_<name>``."""
    if h.kind == "bool":
        w = QCheckBox()
        w.setChecked(bool(h.default))
    elif h.kind == "choice":
        w = QComboBox()
        for c in h.choices:
            w.addItem(str(c), c)
        w.setCurrentIndex(list(h.choices).index(h.default))
    elif h.kind == "int":
        w = QSpinBox()
        w.setRange(int(h.low if h.low is not None else -2**31), int(h.high if h.high is not None else 2**31 - 1))
        w.setValue(int(h.default))
    else:
        w = QDoubleSpinBox()
        # enough decimals for the default itself: a small default (reg_covar 1e-6 in [0, 10])
        # must not show, and then train, as 0.000
        tiny = -math.floor(math.log10(abs(h.default))) + 1 if h.default else 0
        w.setDecimals(min(10, max(6 if h.log or (h.high or 1) <= 1 else 3, tiny)))
        w.setRange(h.low if h.low is not None else -1e9, h.high if h.high is not None else 1e9)
        w.setSingleStep(max(1e-6, abs(h.default) / 10) if h.log else 0.1 * ((h.high or 1) - (h.low or 0)) / 10)
        w.setValue(float(h.default))
    w.setObjectName(f"hp_{h.name}")
    w.setToolTip(h.help or h.name)
    return w


def changed_signal(w: QWidget):
    """The signal a hyperparameter editor emits when the user changes its value."""
    if isinstance(w, QCheckBox):
        return w.toggled
    if isinstance(w, QComboBox):
        return w.currentIndexChanged
    return w.valueChanged


def editor_value(w: QWidget) -> Any:
    """The value an editor made by :func:`make_editor` holds."""
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, QComboBox):
        return w.currentData()
    return w.value()


def set_editor_value(w: QWidget, v: Any) -> None:
    """Show ``v`` in an editor made by :func:`make_editor` (a choice it lacks is ignored)."""
    if isinstance(w, QCheckBox):
        w.setChecked(bool(v))
    elif isinstance(w, QComboBox):
        i = w.findData(v)
        if i >= 0:
            w.setCurrentIndex(i)
    else:
        w.setValue(v)
