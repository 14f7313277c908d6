"""Guards against Qt binding releases that break the app in ways no other test would see soon."""

from __future__ import annotations

import sys


def test_void_methods_keep_none_alive(qapp):
    """PySide6 6.12.0 returned None from void methods without a new reference: every
    QPainter.save/setPen/drawLine took one reference from None, and pyqtgraph's repaints drained
    it until CPython aborted ("deallocating None") after ~20 s of training in a real window."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor, QImage, QPainter, QPen

    img = QImage(64, 64, QImage.Format.Format_ARGB32)
    painter = QPainter(img)
    pen = QPen(QColor(10, 20, 30))
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.save()
        painter.setPen(pen)
        painter.drawLine(QPointF(0, 0), QPointF(10, 10))
        painter.restore()
    after = sys.getrefcount(None)
    painter.end()
    assert after >= before - 100, f"None lost {before - after} references in 8000 void calls"
