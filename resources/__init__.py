"""The files the app ships: weights, the digit classifier and 500 validation digits.

In the source tree this folder is ``resources/``; installed (wheel, frozen bundle) it is the
package ``genmodel_resources`` (``[tool.setuptools.package-dir]`` in ``pyproject.toml``), so its
files travel as package data. The code reaches them only through :mod:`core.shipped`.
"""

#: what :mod:`core.shipped` checks before it trusts a package of this name
GENMODEL_RESOURCES = True
