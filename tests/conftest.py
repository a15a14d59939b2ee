"""Shared test fixtures: where the real data lives, and how its absence is handled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dask.callbacks import Callback

SHARED_DATA = Path(
    os.environ.get(
        "XR_UNMIXSR_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


def _require(path: Path) -> Path:
    """Return ``path`` or skip the test; in CI (XR_UNMIXSR_REQUIRE_DATA=1) absence is a failure."""
    if path.exists():
        return path
    msg = f"real data not found at {path} (set XR_UNMIXSR_DATA or place ../shared/data beside the repo)"
    if os.environ.get("XR_UNMIXSR_REQUIRE_DATA") == "1":
        pytest.fail(msg + "; XR_UNMIXSR_REQUIRE_DATA=1 forbids skipping")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder (skips, or fails in CI, when absent)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def enmap_path(shared_data: Path) -> Path:
    """The real EnMAP Potsdam mosaic GeoTIFF (224 bands, EPSG:32633)."""
    return _require(shared_data / "enmap_potsdam" / "enmap_potsdam_mosaic_128x64x224.tif")


class ComputeCounter(Callback):
    """A dask callback that counts the computations started while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    def _start(self, dsk: object) -> None:
        self.started += 1


@pytest.fixture
def compute_counter() -> ComputeCounter:
    """A fresh :class:`ComputeCounter`: ``with compute_counter: ...`` then check ``.started``."""
    return ComputeCounter()
