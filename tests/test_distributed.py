"""Running on dask.distributed: same results as the threaded scheduler, model weights sent once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import distributed  # in the test extras: these tests never skip
import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.engine.tiling import upscale_array
from xr_unmixsr.io import write_raster
from xr_unmixsr.models import conv_model

X0, Y0 = 366975.0, 5808045.0


def _cube(size: int = 40, bands: int = 8) -> xr.DataArray:
    rng = np.random.default_rng(5)
    return xr.DataArray(
        (100 + 50 * rng.random((bands, size, size))).astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "wavelength": ("band", np.linspace(450.0, 2300.0, bands)),
            "y": Y0 - (np.arange(size) + 0.5) * 30.0,
            "x": X0 + (np.arange(size) + 0.5) * 30.0,
        },
    ).rio.write_crs("EPSG:32633")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A 2-process LocalCluster for the module (not made the default client)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.mark.parametrize("model", ["bicubic", "conv"])
def test_cluster_equals_threads(client: Any, model: str) -> None:
    cube = _cube().chunk({"y": 16, "x": 16})
    m = conv_model(8, 2, features=8) if model == "conv" else "bicubic"
    sr = xr_unmixsr.upscale(cube, 2, m, device="cpu")
    threaded = sr.compute(scheduler="threads")
    on_cluster = client.compute(sr).result()
    assert on_cluster.shape == (8, 80, 80)
    np.testing.assert_array_equal(on_cluster.values, threaded.values)
    assert on_cluster.rio.crs == threaded.rio.crs
    assert on_cluster.rio.transform() == threaded.rio.transform()


def _task_bytes(arr: da.Array) -> tuple[int, int]:
    """Pickled bytes of the graph's tasks without the model key, and of the model key alone."""
    graph = dict(arr.__dask_graph__())
    model_keys = [k for k in graph if str(k).startswith("srmodel-")]
    assert len(model_keys) == 1
    tasks = sum(len(cloudpickle.dumps(v)) for k, v in graph.items() if k not in model_keys)
    return tasks, len(cloudpickle.dumps(graph[model_keys[0]]))


def test_graph_size_independent_of_model_size() -> None:
    data = da.random.random((8, 64, 64), chunks=(8, 16, 16)).astype(np.float32)
    small, large = conv_model(8, 2, features=8), conv_model(8, 2, features=64)
    model_diff = len(cloudpickle.dumps(large)) - len(cloudpickle.dumps(small))
    assert model_diff > 100_000
    tasks_small, key_small = _task_bytes(upscale_array(data, small, device="cpu"))
    tasks_large, key_large = _task_bytes(upscale_array(data, large, device="cpu"))
    # the weights are in the one model key; the 16 block tasks only refer to it
    assert abs(tasks_large - tasks_small) < model_diff / 100
    assert key_large - key_small > model_diff / 2
    # the whole graph holds the model once
    whole = len(cloudpickle.dumps(dict(upscale_array(data, large, device="cpu").dask)))
    assert whole < tasks_large + 2 * key_large


def test_threaded_result_unchanged() -> None:
    data = _cube().data
    model = conv_model(8, 2, features=8)
    lazy = upscale_array(da.from_array(data, chunks=(8, 16, 16)), model, device="cpu")
    np.testing.assert_array_equal(
        lazy.compute(scheduler="threads"), upscale_array(data, model, device="cpu")
    )
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(lazy.compute(), lazy.compute(scheduler="threads"))


def _run(argv: list[str]) -> tuple[int, str]:
    out = StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        rc = main(argv)
    return rc, out.getvalue()


def test_cli_workers_writes_same_geotiff(tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    write_raster(_cube(), src)
    ref, dist = tmp_path / "ref.tif", tmp_path / "dist.tif"
    common = ["--scale", "2", "--chunk", "16", "--quiet"]
    assert _run(["upscale", str(src), str(ref), *common])[0] == 0
    rc, text = _run(["upscale", str(src), str(dist), *common, "--workers", "2"])
    assert rc == 0, text
    with rasterio.open(ref) as a, rasterio.open(dist) as b:
        assert a.profile == b.profile
        assert a.tags() == b.tags()
        assert [a.tags(i) for i in a.indexes] == [b.tags(i) for i in b.indexes]
        np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
        (["--scheduler", "nosuch://127.0.0.1:1"], "cannot connect to the dask scheduler"),
        (["--workers", "0"], "at least 1"),
    ],
)
def test_cli_bad_cluster_options(tmp_path: Path, options: list[str], message: str) -> None:
    src = tmp_path / "in.tif"
    write_raster(_cube(size=8), src)
    for command in (["upscale", "--scale", "2"], ["unmix", "--n-endmembers", "2"]):
        out = tmp_path / f"{command[0]}.tif"
        rc, text = _run([command[0], str(src), str(out), *command[1:], *options, "--quiet"])
        assert rc == 2
        assert "xr-unmixsr: error:" in text and message in text
        assert not out.exists()
    # a failed connection leaves no client behind as dask's scheduler (later computations of
    # the process would wait on it for ever)
    assert dask.base.get_scheduler() is None
    with pytest.raises(ValueError):
        distributed.default_client()
