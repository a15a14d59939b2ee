"""Benchmark: upscaling on a dask.distributed LocalCluster (issue 6's scale-out goals).

Three parts, each printed as a table:

``scene``
    A lazily generated ``--bands`` x ``--size`` x ``--size`` float32 scene (smooth synthetic
    spectra, made block by block by ``dask.array.map_blocks``: no full-scene array exists
    anywhere) is upscaled x2 with bicubic into a Zarr store on a LocalCluster of ``--workers``
    processes (one thread each). Prints the wall time, the output size, each worker's peak
    resident set size (``ru_maxrss`` read in the worker after the run: the kernel's maximum
    over the worker's life) and the client process's peak. Goal: < 3 GB per worker.

``speedup``
    The same job with a convolutional model (compute-bound, like a trained network) on a
    smaller scene, on LocalClusters of 1 and then 2 workers; prints both wall times and their
    ratio (goal >= 1.6 on this 2-core machine).

``graph``
    Pickled bytes of the task graph without the model key, and of the model key, for conv
    models of growing size: the graph's size does not grow with the model's.

Nothing is asserted. Usage::

    python benchmarks/bench_distributed.py scene [--size 8192] [--bands 64] [--chunk 512]
        [--memory-limit 3GB]
    python benchmarks/bench_distributed.py speedup [--size 1024] [--bands 64] [--chunk 256]
    python benchmarks/bench_distributed.py graph
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
import dask.array as da
import distributed
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

import xr_unmixsr
from xr_unmixsr.distributed import scheduled_on
from xr_unmixsr.engine.tiling import upscale_array
from xr_unmixsr.io import write_raster
from xr_unmixsr.models import conv_model

GB = 2**30


def _spectra_block(block_info: dict | None = None) -> np.ndarray:
    """One block of the synthetic scene: 3 materials mixed by smooth abundance fields."""
    info = block_info[None]
    (b0, b1), (y0, y1), (x0, x1) = info["array-location"]
    bands = np.linspace(0.0, 1.0, info["shape"][0], dtype=np.float32)[b0:b1, None, None]
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = 0.5 + 0.5 * np.sin(yy / 97.0) * np.cos(xx / 131.0)
    b = 0.5 + 0.5 * np.cos((yy + xx) / 211.0)
    soil, veg, water = 0.2 + 0.3 * bands, 0.05 + 0.5 * (bands > 0.3), 0.1 - 0.08 * bands
    cube = a * soil + (1 - a) * (b * veg + (1 - b) * water)
    return (1000.0 * cube).astype(np.float32)


def synthetic_scene(size: int, bands: int, chunk: int) -> xr.DataArray:
    """A lazily generated, georeferenced (EPSG:32633, 30 m) scene."""
    data = da.map_blocks(
        _spectra_block,
        chunks=((bands,), *(tuple(da.core.normalize_chunks(chunk, (size,))[0]),) * 2),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
    )
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "y": 5808045.0 - (np.arange(size) + 0.5) * 30.0,
            "x": 366975.0 + (np.arange(size) + 0.5) * 30.0,
        },
    ).rio.write_crs("EPSG:32633")


def _cluster(workers: int, memory_limit: str = "0") -> distributed.LocalCluster:
    """Workers of one thread; no memory limit unless one is given (e.g. "3GB": dask's worker
    memory manager then spills at 60 %, pauses at 80 % and restarts the worker at 95 %)."""
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        memory_limit=memory_limit,
    )


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed_write(
    workers: int, sr: xr.DataArray, out: Path, memory_limit: str = "0"
) -> tuple[float, list[int]]:
    """Write ``sr`` to ``out`` on a fresh cluster; wall seconds and each worker's peak RSS."""
    with (
        _cluster(workers, memory_limit) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        c.run(lambda: None)  # workers up
        start = time.perf_counter()
        with scheduled_on(c):
            write_raster(sr, out, overwrite=True)
        wall = time.perf_counter() - start
        peaks = sorted(c.run(_peak_rss).values())
    return wall, peaks


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_scene(args: argparse.Namespace, tmp: Path) -> None:
    cube = synthetic_scene(args.size, args.bands, args.chunk)
    sr = xr_unmixsr.upscale(cube, 2)
    out = tmp / "sr.zarr"
    wall, peaks = _timed_write(args.workers, sr, out, args.memory_limit)
    in_bytes, out_bytes = cube.nbytes, sr.nbytes
    print(f"scene {args.bands} x {args.size} x {args.size} float32 ({in_bytes / GB:.1f} GiB), ")
    print(
        f"x2 bicubic -> {sr.shape} ({out_bytes / GB:.1f} GiB), chunks {args.chunk}, "
        f"worker memory limit {args.memory_limit}"
    )
    print(
        "| workers | wall (s) | output MB/s | Zarr on disk (GiB) | peak RSS per worker (GiB) "
        "| client peak RSS (GiB) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {args.workers} | {wall:.0f} | {out_bytes / 2**20 / wall:.0f} | {_du(out) / GB:.1f} | "
        f"{' / '.join(f'{p / GB:.2f}' for p in peaks)} | {_peak_rss() / GB:.2f} |"
    )


def bench_speedup(args: argparse.Namespace, tmp: Path) -> None:
    cube = synthetic_scene(args.size, args.bands, args.chunk)
    model = conv_model(args.bands, 2, features=args.features)
    sr = xr_unmixsr.upscale(cube, 2, model, device="cpu")
    walls = {}
    for workers in (1, 2):
        walls[workers], _ = _timed_write(workers, sr, tmp / f"sr{workers}.zarr")
    print(
        f"conv x2 (features {args.features}) on {args.bands} x {args.size} x {args.size}, "
        f"chunks {args.chunk}, to Zarr"
    )
    print("| 1 worker (s) | 2 workers (s) | speed-up |")
    print("| --- | --- | --- |")
    print(f"| {walls[1]:.1f} | {walls[2]:.1f} | {walls[1] / walls[2]:.2f} |")


def _graph_bytes(arr: da.Array) -> tuple[int, int, int]:
    graph = dict(arr.__dask_graph__())
    (key,) = [k for k in graph if str(k).startswith("srmodel-")]
    tasks = sum(len(cloudpickle.dumps(v)) for k, v in graph.items() if k != key)
    return len(graph), tasks, len(cloudpickle.dumps(graph[key]))


def bench_graph(args: argparse.Namespace, tmp: Path) -> None:
    data = da.zeros((args.bands, 1024, 1024), chunks=(args.bands, 256, 256), dtype=np.float32)
    print(f"{args.bands} bands, 1024 x 1024 in 256 x 256 chunks (16 block tasks)")
    print(
        "| conv features | model (MB, pickled) | graph keys | tasks without model (kB) "
        "| model key (MB) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for features in (8, 64, 256):
        model = conv_model(args.bands, 2, features=features)
        keys, tasks, key = _graph_bytes(upscale_array(data, model, device="cpu"))
        size = len(cloudpickle.dumps(model))
        print(f"| {features} | {size / 1e6:.2f} | {keys} | {tasks / 1e3:.0f} | {key / 1e6:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["scene", "speedup", "graph"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--bands", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument(
        "--memory-limit", default="0", help="scene: dask worker memory limit (default 0: none)"
    )
    parser.add_argument("--tmp", default=None, help="folder for the outputs (default: a temp dir)")
    args = parser.parse_args()
    defaults: dict[str, Any] = {"scene": (8192, 512), "speedup": (1024, 256), "graph": (0, 0)}
    size, chunk = defaults[args.part]
    args.size, args.chunk = args.size or size, args.chunk or chunk
    tmp = Path(tempfile.mkdtemp(prefix="bench_distributed_", dir=args.tmp))
    try:
        {"scene": bench_scene, "speedup": bench_speedup, "graph": bench_graph}[args.part](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
