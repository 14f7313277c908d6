"""Pure numpy/torch core of the generative-model sandbox.

Nothing under ``core`` may import Qt (PySide6, shiboken6, pyqtgraph, qasync) or ``gui``:
``tests/test_architecture.py`` and the import-linter contract in ``pyproject.toml`` enforce it.
"""

__version__ = "0.1.0"
