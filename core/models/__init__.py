"""One file per model family; importing this package registers them all."""

from core.models import fvsbn  # noqa: F401
