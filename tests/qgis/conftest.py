"""Fixtures of the QGIS plugin's tests: a headless QGIS with the provider, and qgis_process.

These tests need QGIS's Python bindings (``bash .ci/setup-qgis`` makes ``.venv-qgis`` with them).
Where ``qgis`` cannot be imported they skip with a reason; CI sets XR_UNMIXSR_REQUIRE_QGIS=1,
which turns that skip into a failure. Test modules import qgis and the plugin inside fixtures
and tests, never at module level, so that collecting them needs no QGIS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rioxarray
import xarray as xr

from xr_unmixsr.io import open_raster, write_raster

REPO = Path(__file__).resolve().parents[2]
QGIS_PLUGINS = Path("/usr/share/qgis/python/plugins")  # the ``processing`` package


def _require_qgis() -> None:
    """Skip (or, with XR_UNMIXSR_REQUIRE_QGIS=1, fail) when QGIS's Python bindings are missing."""
    try:
        import qgis.core  # noqa: F401
    except ImportError as exc:
        msg = f"QGIS Python bindings not importable ({exc}): run `bash .ci/setup-qgis` and use .venv-qgis"
        if os.environ.get("XR_UNMIXSR_REQUIRE_QGIS") == "1":
            pytest.fail(msg + "; XR_UNMIXSR_REQUIRE_QGIS=1 forbids skipping")
        pytest.skip(msg)


def headless_env(tmp: Path) -> dict[str, str]:
    """Environment variables for headless QGIS: offscreen Qt, a private runtime folder."""
    run = tmp / "xdg-runtime"
    run.mkdir(mode=0o700, exist_ok=True)
    return {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(run)}


@pytest.fixture(scope="session")
def qgis_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An initialised ``QgsApplication`` with Processing and the ``unmixsr`` provider."""
    _require_qgis()
    os.environ.update(headless_env(tmp_path_factory.mktemp("qgis")))
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    sys.path[:0] = [str(QGIS_PLUGINS), str(REPO)]
    from processing.core.Processing import Processing

    Processing.initialize()
    from qgis_plugin.provider import UnmixSRProvider

    provider = UnmixSRProvider()  # keep the reference, or Python collects it
    QgsApplication.processingRegistry().addProvider(provider)
    yield app
    QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin zip built by ``python -m qgis_plugin.build``."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "qgis_plugin.build", str(out)], cwd=REPO, check=True, timeout=60
    )
    return out / "xr_unmixsr_qgis.zip"


@pytest.fixture(scope="session")
def qgis_process(plugin_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run ``qgis_process.bin`` with the plugin unzipped from ``plugin_zip`` and enabled.

    Returns a function ``run(*args, python_path=True, timeout=300, popen=False)`` giving the
    ``CompletedProcess`` (with ``popen=True`` the running ``Popen``, text pipes);
    ``python_path=False`` hides xr_unmixsr and torch from QGIS's Python.
    """
    _require_qgis()
    exe = shutil.which("qgis_process.bin")
    if exe is None:
        pytest.fail("qgis_process.bin not found although qgis imports: install the qgis package")
    tmp = tmp_path_factory.mktemp("qgis_process")
    plugins = tmp / "plugins"
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    (tmp / "home").mkdir()
    base = {
        **os.environ,
        **headless_env(tmp),
        "HOME": str(tmp / "home"),
        "QGIS_PLUGINPATH": str(plugins),
    }
    base.pop("PYTHONPATH", None)
    # qgis_process ignores venvs: its embedded Python finds the packages through PYTHONPATH
    # (the repository itself too, since an editable install's .pth is not read from there)
    with_core = {
        **base,
        "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(REPO)]),
    }

    def run(*args: str, python_path: bool = True, timeout: float = 300, popen: bool = False) -> Any:
        env = with_core if python_path else base
        if popen:
            pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            return subprocess.Popen([exe, *args], env=env, text=True, **pipes)
        return subprocess.run(
            [exe, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    enabled = run("plugins", "enable", "xr_unmixsr_qgis")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return run


@pytest.fixture(scope="session")
def enmap_crop(enmap_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40 x 36 part of the real EnMAP scene (all 224 bands), for the slower algorithms."""
    crop = tmp_path_factory.mktemp("enmap") / "enmap_crop.tif"
    write_raster(open_raster(enmap_path).isel(y=slice(24, 64), x=slice(20, 56)), crop)
    return crop


@pytest.fixture(scope="session")
def one_band_raster(enmap_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Band 50 of the EnMAP scene alone: a raster that cannot be unmixed."""
    path = tmp_path_factory.mktemp("one_band") / "one_band.tif"
    band = open_raster(enmap_path).isel(band=[49])
    band.attrs.pop("long_name", None)  # rioxarray checks it against the band count
    write_raster(band, path)
    return path


def _assert_same_raster(path: Path | str, expected: xr.DataArray, rtol: float = 1e-6) -> None:
    """``path`` (a GeoTIFF) has ``expected``'s CRS, transform, shape and values (NaN = NaN)."""
    got = rioxarray.open_rasterio(path, masked=True)
    if expected.ndim == 2:
        got = got.squeeze("band", drop=True)
    assert got.rio.crs == expected.rio.crs
    np.testing.assert_allclose(
        tuple(got.rio.transform())[:6], tuple(expected.rio.transform())[:6], rtol=0, atol=1e-6
    )
    assert got.shape == expected.shape
    want = expected.values.astype(np.float64)
    nodata = expected.rio.nodata
    if nodata is not None and np.isfinite(nodata):
        want[want == nodata] = np.nan
    np.testing.assert_allclose(got.values, want, rtol=rtol, atol=1e-6 * np.nanmax(np.abs(want)))


@pytest.fixture(scope="session")
def assert_same_raster() -> Any:
    """``assert_same_raster(path, expected, rtol=1e-6)``: the GeoTIFF at ``path`` has the CRS,
    transform, shape and values (within ``rtol``; NaN where ``expected`` is NaN or nodata) of
    the DataArray ``expected``."""
    return _assert_same_raster
