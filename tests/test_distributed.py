"""Running on dask.distributed: same results as the threaded scheduler, model weights sent once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
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
from xr_unmixsr.distributed import scheduled_on
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


def _slow_block(block: np.ndarray, log: str) -> np.ndarray:
    time.sleep(0.3)
    with open(log, "a") as f:
        f.write("x\n")
    return block + 1


def test_ctrl_c_dropped_by_python_still_stops_the_run(client: Any, tmp_path: Path) -> None:
    """A Ctrl-C whose KeyboardInterrupt Python dropped (raised in a garbage-collector callback:
    seen once in 3 interrupted CLI runs under load) still interrupts compute_on_cluster, which
    then drains the workers. Simulated by recording the interrupt from another thread."""
    log = tmp_path / "ran.txt"
    slow = da.zeros((40, 10), chunks=(1, 10)).map_blocks(_slow_block, log=str(log))  # 40 x 0.3 s

    def interrupt_once_running() -> None:
        while not any(client.processing().values()):
            time.sleep(0.02)
        xr_unmixsr.distributed._sigint.set()

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    # as in a foreground process (a background one, as CI may be, ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            xr_unmixsr.distributed.compute_on_cluster(client, [slow])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not any(client.run(xr_unmixsr.distributed._active_keys).values())  # drained
    ran = len(log.read_text().splitlines()) if log.exists() else 0
    time.sleep(1.0)
    assert (len(log.read_text().splitlines()) if log.exists() else 0) == ran < 40  # cancelled
    assert not xr_unmixsr.distributed._sigint.is_set()  # the next run is not interrupted


def _write_killing_a_worker(client: Any, cube: xr.DataArray, out: Path) -> bool:
    """Write ``cube``'s x2 upscale to ``out`` on ``client`` and SIGKILL one worker mid-run.

    Returns whether the write was still running when the worker was killed.
    """
    model = conv_model(8, 2, features=24)
    sr = xr_unmixsr.upscale(cube, 2, model, device="cpu")
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with scheduled_on(client):
                write_raster(sr, out)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    running_at_kill = not done.is_set()
    victim = sorted(client.run(os.getpid).items())[0][1]
    os.kill(victim, signal.SIGKILL)
    writer.join(timeout=300)
    assert not writer.is_alive(), "the write did not finish after a worker was killed"
    if errors:
        raise errors[0]
    return running_at_kill


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_worker_killed_mid_run_same_output(tmp_path: Path, suffix: str) -> None:
    cube = _cube(size=384).chunk({"y": 32, "x": 32})
    ref = tmp_path / f"ref{suffix}"
    write_raster(xr_unmixsr.upscale(cube, 2, conv_model(8, 2, features=24), device="cpu"), ref)
    out = tmp_path / f"out{suffix}"
    # a cluster of its own: one of its workers dies (the nanny starts a new one)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        pids_before = set(c.run(os.getpid).values())
        assert _write_killing_a_worker(c, cube, out), "the run ended before the kill: enlarge it"
        c.wait_for_workers(2, timeout=60)
        assert set(c.run(os.getpid).values()) != pids_before  # a worker was replaced
    a, b = xr_unmixsr.open_raster(ref), xr_unmixsr.open_raster(out)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.rio.transform() == b.rio.transform() and a.rio.crs == b.rio.crs
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ref.name, out.name])


@pytest.mark.parametrize(
    ("command", "out_name", "options"),
    [
        ("upscale", "out.tif", ["--workers", "2", "--chunk", "64"]),
        # abundances back-projected to x4 (tasks of seconds), on a cluster that outlives the
        # client: its workers would go on writing after the client left
        ("unmix", "out.zarr", ["--n-endmembers", "3", "--chunk", "256", "--scheduler", "external"]),
    ],
)
def test_cli_interrupted_on_cluster_leaves_nothing(
    tmp_path: Path, command: str, out_name: str, options: list[str]
) -> None:
    """Ctrl-C: exit 130, and no file left, even by workers that go on after the client left."""
    with ExitStack() as stack:
        client = None
        if "external" in options:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
            )
            client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
            options = [cluster.scheduler_address if o == "external" else o for o in options]
        busy = (lambda: any(client.run(_executing).values())) if client else (lambda: True)
        _interrupt_cli(tmp_path, command, out_name, options, busy)
        deadline = time.monotonic() + 60
        while busy() and client is not None and time.monotonic() < deadline:
            time.sleep(0.2)  # a task still running on a worker would write into the folder
        assert [p.name for p in tmp_path.iterdir()] == ["in.tif"]


def _tree(path: Path) -> list[Path]:
    return [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]


def _executing(dask_worker: Any) -> int:
    """Tasks running on a worker (``client.run`` passes the worker), forgotten by the scheduler
    or not."""
    return len(dask_worker.active_threads)


def _interrupt_cli(
    tmp_path: Path, command: str, out_name: str, options: list[str], busy: Callable[[], bool]
) -> None:
    """Run the CLI and send it SIGINT once blocks are being written into its temporary output
    (the temporary file or store exists and grows; for a GeoTIFF, exists) and ``busy()``."""
    src = tmp_path / "in.tif"
    write_raster(_cube(size=768), src)
    out = tmp_path / out_name
    proc = subprocess.Popen(
        [sys.executable, "-m", "xr_unmixsr.cli", command, str(src), str(out), *options]
        + ["--scale", "4", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # a foreground CLI: under a runner that ignores SIGINT, the child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    # the temporary output appears when the workers start writing
    first: int | None = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        files = [f for p in tmp_path.iterdir() if ".tmp" in p.name for f in _tree(p)]
        if files and first is None:
            first = len(files)  # the metadata: the blocks come after
        if first is not None and (len(files) > first or out.suffix == ".tif") and busy():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before the interrupt: enlarge it"
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=180)[0].decode()
    assert proc.returncode == 130, text
    assert [p.name for p in tmp_path.iterdir()] == ["in.tif"], text


def test_cli_many_scenes_on_one_cluster(tmp_path: Path) -> None:
    for i in range(2):
        write_raster(_cube(size=24 + 8 * i), tmp_path / f"s{i}.tif")
    rc, text = _run(
        ["upscale", str(tmp_path / "s*.tif"), str(tmp_path / "out"), "--scale", "2"]
        + ["--chunk", "16", "--workers", "2", "--quiet"]
    )
    assert rc == 0, text
    assert "2 of 2 scenes written" in text
    for i in range(2):
        ref = xr_unmixsr.upscale(xr_unmixsr.open_raster(tmp_path / f"s{i}.tif"), 2)
        out = xr_unmixsr.open_raster(tmp_path / "out" / f"s{i}_x2.tif")
        np.testing.assert_array_equal(out.values, ref.values)
