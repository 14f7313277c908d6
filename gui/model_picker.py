"""The model picker: families grouped as the registry groups them."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from core import registry

KEY_ROLE = Qt.ItemDataRole.UserRole


class ModelPicker(QWidget):
    model_selected = Signal(str)  # a family key

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setObjectName("modelTree")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setObjectName("modelDescription")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.description)
        self._items: dict[str, QTreeWidgetItem] = {}
        for group, infos in registry.grouped().items():
            parent_item = QTreeWidgetItem(self.tree, [group])
            parent_item.setFlags(parent_item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            for info in infos:
                item = QTreeWidgetItem(parent_item, [info.name])
                item.setData(0, KEY_ROLE, info.key)
                item.setToolTip(0, f"{info.description}\nLikelihood: {info.likelihood.value}")
                self._items[info.key] = item
            parent_item.setExpanded(True)
        self.tree.currentItemChanged.connect(self._on_current)

    def keys(self) -> list[str]:
        return list(self._items)

    def current_key(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, KEY_ROLE) if item is not None else None

    def select(self, key: str) -> bool:
        item = self._items.get(key)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        return True

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_current(self, item: QTreeWidgetItem | None, _previous=None) -> None:
        key = item.data(0, KEY_ROLE) if item is not None else None
        if key:
            info = registry.info(key)
            self.description.setText(f"<b>{info.name}</b><br>{info.description}<br>"
                                     f"<i>likelihood: {info.likelihood.value}</i>")
            self.model_selected.emit(key)
