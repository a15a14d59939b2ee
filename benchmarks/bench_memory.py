"""Benchmark: peak memory of ``xr-unmixsr upscale`` as the scene grows.

Writes two georeferenced float32 GeoTIFFs (tiled, uncompressed) to a temporary folder: a base
scene of ``--bands`` x ``--size`` x ``--size`` and a scene 4 times larger (twice the size in each
spatial dimension), both made of smooth synthetic spectra and written window by window, so making
them takes little memory. Then it runs, each in a fresh child process,

    xr-unmixsr upscale IN OUT.tif --scale S --chunk C --quiet

on both and reads the child's peak resident set size (``ru_maxrss`` from ``os.wait4``: the
maximum over the child's life, taken by the kernel, no polling). It prints both peaks, their
ratio large / base (goal <= 1.3: memory follows the chunk size, not the scene size), and for
context the peak RSS of a bare ``python -c "import xr_unmixsr"`` and of a process that imports
what the ``upscale`` command loads (torch, xarray, dask, rioxarray).

Nothing is asserted. Needs Linux or macOS (``os.wait4``).

Usage::

    python benchmarks/bench_memory.py [--bands 64] [--size 768] [--chunk 256] [--scale 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

#: what the ``upscale`` command imports besides the package itself
_CLI_IMPORTS = "import xr_unmixsr, xr_unmixsr.cli, xr_unmixsr.io, xr_unmixsr.sr"


@dataclass(frozen=True)
class ChildRun:
    """Resources used by one child process.

    Attributes:
        peak_rss: peak resident set size in bytes.
        wall: wall-clock time in seconds.
        returncode: exit status.
        output: the child's stdout and stderr.
    """

    peak_rss: int
    wall: float
    returncode: int
    output: str


def run_child(cmd: list[str]) -> ChildRun:
    """Run ``cmd`` and return its peak RSS (from ``os.wait4``), wall time and exit status."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read().decode(errors="replace")
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return ChildRun(usage.ru_maxrss * scale, wall, proc.returncode, output)


def write_scene(path: Path, n_bands: int, size: int, *, block: int = 256, seed: int = 0) -> None:
    """Write a georeferenced (bands, size, size) float32 GeoTIFF of smooth synthetic spectra.

    Each pixel is a mixture of four smooth spectra with weights that vary smoothly in space
    (sums of sinusoids of random phase), written window by window (``block`` rows at a time).
    """
    rng = np.random.default_rng(seed)
    wl = np.linspace(0.0, 1.0, n_bands, dtype=np.float32)
    spectra = np.stack(
        [0.2 + 0.3 * np.exp(-(((wl - c) / 0.25) ** 2)) for c in rng.uniform(0, 1, 4)]
    ).astype(np.float32)  # (4, bands)
    freqs = rng.uniform(0.002, 0.03, (4, 2)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, (4, 2)).astype(np.float32)
    x = np.arange(size, dtype=np.float32)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=n_bands,
        dtype="float32",
        crs="EPSG:32633",
        transform=from_origin(366000.0, 5810000.0, 10.0, 10.0),
        tiled=True,
        blockxsize=block,
        blockysize=block,
        interleave="pixel",
        BIGTIFF="IF_SAFER",
    )
    with rasterio.open(path, "w", **profile) as dst:
        for y0 in range(0, size, block):
            y = np.arange(y0, min(y0 + block, size), dtype=np.float32)
            weights = np.stack(
                [
                    1.0
                    + np.sin(freqs[k, 0] * y[:, None] + phases[k, 0])
                    * np.cos(freqs[k, 1] * x[None, :] + phases[k, 1])
                    for k in range(4)
                ]
            )  # (4, rows, size)
            weights /= weights.sum(axis=0, keepdims=True)
            cube = np.tensordot(spectra.T, weights, axes=1).astype(np.float32)
            dst.write(cube, window=Window(0, y0, size, len(y)))


def _cli() -> list[str]:
    """The ``xr-unmixsr`` command: the console script next to this Python, else ``-m``."""
    script = Path(sys.executable).with_name("xr-unmixsr")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "xr_unmixsr.cli"]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=64, help="number of bands (default 64)")
    parser.add_argument(
        "--size", type=int, default=768, help="base scene rows = columns (default 768)"
    )
    parser.add_argument("--chunk", type=int, default=256, help="CLI --chunk (default 256)")
    parser.add_argument("--scale", type=int, default=2, help="CLI --scale (default 2)")
    parser.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="further arguments for 'xr-unmixsr upscale' (e.g. --extra --tile 256)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the rasters")
    parser.add_argument("--keep", action="store_true", help="keep the rasters")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_", dir=args.workdir))
    try:
        base_imp = run_child([sys.executable, "-c", "import xr_unmixsr"])
        cli_imp = run_child([sys.executable, "-c", _CLI_IMPORTS])
        print(f"peak RSS of 'python -c \"import xr_unmixsr\"': {_mib(base_imp.peak_rss)}")
        print(f"peak RSS of 'python -c \"{_CLI_IMPORTS}\"': {_mib(cli_imp.peak_rss)}")

        results: dict[str, tuple[int, ChildRun]] = {}
        for label, size in (("base", args.size), ("large (4x)", 2 * args.size)):
            src = workdir / f"scene_{size}.tif"
            t0 = time.perf_counter()
            write_scene(src, args.bands, size)
            t_write = time.perf_counter() - t0
            out = workdir / f"scene_{size}_x{args.scale}.tif"
            cmd = [
                *_cli(),
                "upscale",
                str(src),
                str(out),
                "--scale",
                str(args.scale),
                "--chunk",
                str(args.chunk),
                "--quiet",
                *args.extra,
            ]
            run = run_child(cmd)
            if run.returncode != 0:
                print(f"{label}: {' '.join(cmd)} failed ({run.returncode}):\n{run.output}")
                return 1
            results[label] = (size, run)
            print(
                f"{label}: input {args.bands} x {size} x {size} float32 "
                f"({_mib(src.stat().st_size)}, written in {t_write:.1f} s), output "
                f"{_mib(out.stat().st_size)} on disk; {(size // args.chunk) ** 2} chunks of "
                f"{args.chunk}; CLI run {run.wall:.1f} s"
            )
            out.unlink()

        print(
            f"\nxr-unmixsr upscale --scale {args.scale} --chunk {args.chunk} "
            f"{' '.join(args.extra)}".rstrip()
        )
        header = f"{'scene':<12} {'size':>11} {'peak RSS':>12} {'above CLI imports':>18}"
        print(header)
        print("-" * len(header))
        for label, (size, run) in results.items():
            print(
                f"{label:<12} {f'{size} x {size}':>11} {_mib(run.peak_rss):>12} "
                f"{_mib(run.peak_rss - cli_imp.peak_rss):>18}"
            )
        base_rss = results["base"][1].peak_rss
        large_rss = results["large (4x)"][1].peak_rss
        above = (large_rss - cli_imp.peak_rss) / max(base_rss - cli_imp.peak_rss, 1)
        print(
            f"\nratio large / base peak RSS: {large_rss / base_rss:.2f} (goal <= 1.3); "
            f"of the memory above the imports: {above:.2f}"
        )
    finally:
        if args.keep:
            print(f"rasters kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total run time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
