"""The plugin's bridge to xr_unmixsr: lazy import, progress and cancel, error mapping.

Nothing here imports xr_unmixsr or torch at module import time, so QGIS loads the plugin even
where they are missing; :func:`import_core` imports them when an algorithm runs and turns their
absence into a :class:`QgsProcessingException` that says how to install them.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback

#: how to install the core into QGIS's own Python, per platform (docs/qgis.md has the details);
#: "numpy<2" keeps the numpy that QGIS's GDAL bindings were built against.
INSTALL_COMMANDS = {
    "linux": "/usr/bin/python3 -m pip install --user --index-url "
    "https://download.pytorch.org/whl/cpu torch, then /usr/bin/python3 -m pip install --user "
    '"numpy<2" "attrs>=23.2" /path/to/xr_unmixsr (a checkout or wheel; add '
    "--break-system-packages to both on Debian 12, Ubuntu 23.04 and later)",
    "win32": 'in the "OSGeo4W Shell" (Start menu, QGIS folder): python -m pip install torch '
    '"numpy<2" C:\\path\\to\\xr_unmixsr (a checkout or wheel)',
    "darwin": "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install torch "
    '"numpy<2" /path/to/xr_unmixsr (a checkout or wheel)',
}

CANCELLED = "cancelled by the user: no output was written"


class Cancelled(Exception):
    """Raised by the progress callbacks when the user cancels; stops the core's computation."""


def install_message(exc: BaseException) -> str:
    """What to tell the user when xr_unmixsr or torch cannot be imported."""
    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    command = INSTALL_COMMANDS.get(platform, INSTALL_COMMANDS["linux"])
    return (
        f"the xr_unmixsr plugin needs the Python packages xr_unmixsr and torch in QGIS's Python, "
        f"and importing them failed ({exc}). Install them with: {command}; then restart QGIS. "
        "See docs/qgis.md of xr_unmixsr for details."
    )


def import_core() -> Any:
    """Import and return the ``xr_unmixsr`` package (with torch).

    Raises:
        QgsProcessingException: it (or a dependency, e.g. torch) is missing or broken; the
            message says how to install it.
    """
    try:
        import torch  # noqa: F401  (imported here so that its absence is reported clearly)

        import xr_unmixsr
    except Exception as exc:  # ImportError, or a broken binary dependency
        raise QgsProcessingException(install_message(exc)) from exc
    return xr_unmixsr


def core_value(name: str, fallback: list[str]) -> list[str]:
    """``xr_unmixsr.<name>`` as a list (called first when it is a function), e.g.
    ``"models.available_models"``; ``fallback`` where the core does not import.

    Parameter choices are filled with it when QGIS loads the provider, which must never fail.
    """
    module, _, attr = name.rpartition(".")
    try:
        value = getattr(importlib.import_module(f"xr_unmixsr.{module}"), attr)
        return [str(v) for v in (value() if callable(value) else value)]
    except Exception:
        return fallback


def reporter(feedback: QgsProcessingFeedback) -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` callback for the core that drives ``feedback``.

    It sets the progress bar and raises :class:`Cancelled` once the user has cancelled, which
    stops the core's computation within one dask task (a tile batch) or one optimiser step.
    """

    def report(done: int, total: int) -> None:
        if feedback.isCanceled():
            raise Cancelled
        feedback.setProgress(100.0 * done / max(total, 1))

    return report


@contextlib.contextmanager
def core_errors() -> Iterator[None]:
    """Map the core's errors (``UnmixSRError``) and a cancel to :class:`QgsProcessingException`.

    The message of a core error is kept as it is: it says what is wrong and what to do.
    """
    from xr_unmixsr.errors import UnmixSRError

    try:
        yield
    except Cancelled as exc:
        raise QgsProcessingException(CANCELLED) from exc
    except UnmixSRError as exc:
        raise QgsProcessingException(str(exc)) from exc
