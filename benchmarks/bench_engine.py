"""Benchmark: efficiency of the tiling engine against one in-memory model call.

For each model (bicubic, and a small convolutional network ``conv_model(bands, scale, features,
depth)``), the script times

* the **reference**: :func:`xr_unmixsr.engine.predict_array` on the whole in-memory array (one
  network call, torch using all its intra-op threads), and
* the **engine**: :func:`xr_unmixsr.upscale` on the same pixels as a dask-backed, georeferenced
  DataArray, for several chunk/tile settings, its blocks either stored into a preallocated
  array (``dask.array.store``: how the GeoTIFF/Zarr writers consume the engine) or concatenated
  into a new one (``.compute()``: one more pass over the output),

and prints the throughput of both in output pixels per second (output rows x columns; every
output pixel holds all bands) and their ratio engine / reference (goal: >= 0.9 on CPU). The
``cpu ratio`` column is reference CPU seconds / engine CPU seconds of this process (user + system,
all threads): the work overhead of the engine, which other load on the machine barely affects.

A second table varies how the CPU is shared between dask and torch for the first chunk/tile
setting: torch intra-op threads (all, or 1) crossed with the dask scheduler (``"synchronous"``,
or ``"threads"`` with 1 or all workers). The reference always runs with all torch threads.

torch's intra-op thread count is per OS thread with the OpenMP backend: a thread takes the
process-wide setting at its first torch call and keeps it, so ``torch.set_num_threads`` in the
main thread does not reach dask worker threads that already exist. Study rows with a dask thread
pool therefore run on a fresh pool whose threads call ``torch.set_num_threads`` when they start;
the ``default`` rows use dask's own pool, as a user's ``.compute()`` does.

Timings are best-of-``--repeats`` rounds after a warm-up; in every round all cases of a model run
in turn, so slow phases of a shared machine hit them alike. Nothing is asserted.

Usage::

    python benchmarks/bench_engine.py [--bands 64] [--size 1024] [--scale 2]
        [--settings 512:256 256:256 256:128] [--batch-size 8] [--repeats 3] [--thread-study]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xr_unmixsr import upscale  # noqa: E402
from xr_unmixsr.engine import predict_array  # noqa: E402
from xr_unmixsr.models import SRModel, bicubic_model, conv_model  # noqa: E402


@dataclass(frozen=True)
class ThreadConfig:
    """How the CPU is shared between dask and torch.

    Attributes:
        torch_threads: torch intra-op threads of the threads running the model, or None for what
            a user gets without setting anything (all cores).
        scheduler: dask scheduler name (``"threads"`` or ``"synchronous"``).
        workers: dask worker threads, or None for dask's default pool (one per core).
        sink: where the blocks go: ``"store"`` writes each block into a preallocated array
            (``dask.array.store``, as the file writers consume the engine), ``"compute"``
            concatenates them into a new array (``.compute()``, one more pass over the output).
    """

    torch_threads: int | None
    scheduler: str
    workers: int | None
    sink: str = "store"

    def label(self) -> str:
        """A short human-readable description."""
        if self.torch_threads is None and self.workers is None:
            return f"default, {self.sink}"
        dask_part = self.scheduler if self.workers is None else f"{self.scheduler}x{self.workers}"
        return f"torch={self.torch_threads} dask={dask_part}"


def make_cube(n_bands: int, size: int, chunk: int | None, seed: int = 0) -> xr.DataArray:
    """A georeferenced (band, y, x) float32 cube of smooth, reflectance-like random values.

    Args:
        n_bands: number of bands.
        size: rows = columns.
        chunk: spatial dask chunk size, or None for a numpy-backed array.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.standard_normal((4, size, size)).astype(np.float32), (0, 6, 6))
    weights = rng.uniform(0.2, 1.0, (n_bands, 4)).astype(np.float32)
    cube = 0.3 + 0.5 * np.tensordot(weights, base, axes=1) / np.abs(base).max()
    cube += rng.standard_normal(cube.shape, dtype=np.float32) * np.float32(0.005)
    res = 10.0
    da = xr.DataArray(
        cube.astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, n_bands + 1),
            "y": 5810000.0 - (np.arange(size) + 0.5) * res,
            "x": 366000.0 + (np.arange(size) + 0.5) * res,
        },
    ).rio.write_crs("EPSG:32633")
    if chunk is not None:
        da = da.chunk({"band": -1, "y": chunk, "x": chunk})
    return da


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Case:
    """One timed computation.

    Attributes:
        run: the computation.
        warmup_run: a smaller computation that warms up the same code paths.
        main_threads: torch intra-op threads of the calling thread during the run (None: as is).
        pool: a thread pool owned by this case, shut down by :meth:`close`.
    """

    run: Callable[[], Any]
    warmup_run: Callable[[], Any]
    main_threads: int | None = None
    pool: ThreadPoolExecutor | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def timed(self, *, record: bool = True) -> None:
        """Run (and record the wall and CPU time of) the computation."""
        previous = torch.get_num_threads()
        if self.main_threads is not None:
            torch.set_num_threads(self.main_threads)
        try:
            if not record:
                self.warmup_run()
                return
            c0, t0 = _cpu_seconds(), time.perf_counter()
            self.run()
            self.wall.append(time.perf_counter() - t0)
            self.cpu.append(_cpu_seconds() - c0)
        finally:
            torch.set_num_threads(previous)

    def close(self) -> None:
        """Shut down the case's thread pool, if any."""
        if self.pool is not None:
            self.pool.shutdown()


def time_interleaved(cases: dict[str, Case], repeats: int) -> None:
    """Warm every case up, then run all cases in turn ``repeats`` times (times kept in cases)."""
    for case in cases.values():
        case.timed(record=False)
    for _ in range(max(1, repeats)):
        for case in cases.values():
            case.timed()


def reference_case(model: SRModel, values: np.ndarray) -> Case:
    """One :func:`predict_array` call on the whole in-memory array, all torch threads."""
    small = values[:, :64, :64]
    return Case(
        run=lambda: predict_array(model, values, device="cpu"),
        warmup_run=lambda: predict_array(model, small, device="cpu"),
        main_threads=torch.get_num_threads(),
    )


def engine_case(
    model: SRModel, cube: xr.DataArray, *, tile: int, batch_size: int, config: ThreadConfig
) -> Case:
    """``upscale(cube).compute()`` through the engine under ``config``."""
    kwargs: dict[str, Any] = {"scheduler": config.scheduler}
    pool = None
    if config.scheduler == "threads" and config.torch_threads is not None:
        workers = config.workers or os.cpu_count() or 1
        pool = ThreadPoolExecutor(
            workers, initializer=torch.set_num_threads, initargs=(config.torch_threads,)
        )
        kwargs["pool"] = pool
    elif config.workers is not None:
        kwargs["num_workers"] = config.workers

    def run(c: xr.DataArray) -> None:
        out = upscale(c, model.scale, model, tile=tile, batch_size=batch_size, device="cpu")
        if config.sink == "compute":
            out.compute(**kwargs)
        else:
            da.store(out.data, np.empty(out.shape, out.dtype), lock=False, **kwargs)

    small = cube.isel(y=slice(0, cube.chunks[1][0]), x=slice(0, cube.chunks[2][0]))
    return Case(
        run=lambda: run(cube),
        warmup_run=lambda: run(small),
        main_threads=config.torch_threads,
        pool=pool,
    )


@dataclass(frozen=True)
class Row:
    """One line of a result table (rates in output pixels per second)."""

    model: str
    setting: str
    threads: str
    engine: float
    direct: float
    cpu_ratio: float

    @property
    def ratio(self) -> float:
        """Engine throughput over reference throughput."""
        return self.engine / self.direct


def print_table(title: str, rows: list[Row]) -> None:
    """Print ``rows`` under ``title``."""
    print(f"\n{title}")
    header = (
        f"{'model':<13} {'chunk/tile':>10}  {'threads':<26} {'engine px/s':>12} "
        f"{'direct px/s':>12} {'ratio':>6} {'cpu ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.model:<13} {r.setting:>10}  {r.threads:<26} {r.engine:>12,.0f} "
            f"{r.direct:>12,.0f} {r.ratio:>6.2f} {r.cpu_ratio:>9.2f}"
        )


def parse_setting(text: str) -> tuple[int, int]:
    """Parse ``CHUNK:TILE`` (e.g. ``256:128``)."""
    try:
        chunk, tile = (int(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected CHUNK:TILE, got {text!r}") from exc
    return chunk, tile


def _loadavg() -> str:
    """The 1-minute load average (the machine may be shared), or "n/a"."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=64, help="number of bands (default 64)")
    parser.add_argument(
        "--size", type=int, default=1024, help="scene rows = columns (default 1024)"
    )
    parser.add_argument("--scale", type=int, default=2, help="upsampling factor (default 2)")
    parser.add_argument(
        "--settings",
        type=parse_setting,
        nargs="+",
        default=[(512, 256), (256, 256), (256, 128)],
        metavar="CHUNK:TILE",
        help="dask chunk and engine tile sizes (default 512:256, the CLI's, then 256:256 256:128); "
        "the first is used for the thread study",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="patches per call (default 8)")
    parser.add_argument("--features", type=int, default=32, help="conv model features (32)")
    parser.add_argument("--depth", type=int, default=2, help="conv model depth (2)")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("bicubic", "conv"),
        default=["bicubic", "conv"],
        help="models to time (default both)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds, best kept (3)")
    parser.add_argument(
        "--thread-study", action="store_true", help="add the torch/dask thread table (slow)"
    )
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    all_threads = torch.get_num_threads()
    cpus = os.cpu_count() or 1
    print(
        f"scene: {args.bands} bands x {args.size} x {args.size} float32, scale {args.scale}, "
        f"batch_size {args.batch_size}; {cpus} CPUs, torch {torch.__version__} with "
        f"{all_threads} intra-op threads; load average {_loadavg()}"
    )
    out_px = (args.size * args.scale) ** 2
    values = make_cube(args.bands, args.size, None).values
    cubes = {chunk: make_cube(args.bands, args.size, chunk) for chunk, _ in args.settings}
    models: dict[str, SRModel] = {}
    for name in args.models:
        if name == "bicubic":
            models[name] = bicubic_model(args.scale)
        else:
            models[f"conv(f{args.features},d{args.depth})"] = conv_model(
                args.bands, args.scale, features=args.features, depth=args.depth
            )

    # (setting, thread config): every setting as a user runs it, then the thread study
    plan: list[tuple[tuple[int, int], ThreadConfig]] = [
        (s, ThreadConfig(None, "threads", None, sink))
        for s in args.settings
        for sink in ("store", "compute")
    ]
    if args.thread_study:
        plan += [
            (args.settings[0], ThreadConfig(t, sched, w))
            for t in sorted({all_threads, 1}, reverse=True)
            for sched, w in (("synchronous", None), ("threads", 1), ("threads", cpus))
        ]

    main_rows: list[Row] = []
    study_rows: list[Row] = []
    for name, model in models.items():
        cases: dict[str, Case] = {"reference": reference_case(model, values)}
        for i, ((chunk, tile), cfg) in enumerate(plan):
            cases[str(i)] = engine_case(
                model, cubes[chunk], tile=tile, batch_size=args.batch_size, config=cfg
            )
        try:
            time_interleaved(cases, args.repeats)
        finally:
            for case in cases.values():
                case.close()
        ref = cases["reference"]
        direct = out_px / min(ref.wall)
        for i, ((chunk, tile), cfg) in enumerate(plan):
            case = cases[str(i)]
            row = Row(
                model=name,
                setting=f"{chunk}/{tile}",
                threads=cfg.label(),
                engine=out_px / min(case.wall),
                direct=direct,
                cpu_ratio=float(np.median(ref.cpu) / np.median(case.cpu)),
            )
            if cfg.torch_threads is None and cfg.workers is None:
                main_rows.append(row)
            if (chunk, tile) == args.settings[0] and args.thread_study:
                study_rows.append(row)

    print_table(
        "engine (upscale on dask input; store or compute) vs one predict_array call "
        f"(torch={all_threads}); ratio = engine / direct (goal >= 0.9)",
        main_rows,
    )
    if study_rows:
        chunk, tile = args.settings[0]
        print_table(f"thread study (chunk {chunk}, tile {tile})", study_rows)
        print()
        for name in models:
            top = max((r for r in study_rows if r.model == name), key=lambda r: r.engine)
            print(f"best for {name}: {top.threads} -> ratio {top.ratio:.2f} (goal >= 0.9)")
    print(
        f"\nwall: best of {args.repeats} interleaved rounds; cpu ratio: medians; load average "
        f"at end {_loadavg()}; total run time {time.perf_counter() - t_start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
