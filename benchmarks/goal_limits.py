"""What the benchmark data allow for two goals of the model issue that are not met.

    python benchmarks/goal_limits.py [--data-dir ../shared/data]

Prints measurements on the benchmark scenes themselves (no training, about 20 s), recorded in
docs/benchmarks.md:

1. Unmixing on Jasper Ridge and Samson (goal: DFFN's mean SAD / abundance RMSE, Jasper 0.031 /
   0.095, Samson 0.029 / 0.027). For each scene, the abundance RMSE of FCLS with the *true*
   endmembers (how much of the error the endmembers decide); for each true endmember, the
   smallest SAD to any pixel of the image (0: the reference endmember is one pixel) and the SAD
   of the mean of the pixels whose true abundance exceeds 0.8 (what an estimate that averages
   nearly pure pixels reaches) and of the endmember that best explains the image given the true
   abundances (least squares: what a method that fits the linear mixing model converges to even
   with perfect abundances).
2. Abundances on the x4 grid of semi-synthetic Urban (goal: RMSE 20 % below the bicubic-upsampled
   LR abundances). The baseline and the back-projection rows of ``evaluate sr-unmix``, the goal,
   and the RMSE of predicting every true HR abundance by the mean of its 4 true HR neighbours: a
   predictor that sees the truth around each pixel, which no method working from the LR scene
   has.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from xr_unmixsr.errors import MissingCRSWarning
from xr_unmixsr.evaluation.datasets import load_benchmark
from xr_unmixsr.evaluation.evaluate import evaluate_sr_unmixing
from xr_unmixsr.metrics import sad_matrix
from xr_unmixsr.unmixing.fcls import fcls

PURE = 0.8


def unmixing_limits(name: str, data_dir: str | None) -> None:
    """Print the unmixing measurements of one scene."""
    bench = load_benchmark(name, data_dir)
    cube = bench.cube.values.astype(np.float64)
    pixels = cube.reshape(len(cube), -1).T
    truth = bench.abundances.reshape(len(bench.endmembers), -1).T
    est = fcls(pixels, bench.endmembers)
    rmse = np.sqrt(((est - truth) ** 2).mean(axis=0)).mean()
    print(f"{name}: FCLS with the true endmembers: abundance RMSE {rmse:.4f}")
    to_pixels = sad_matrix(bench.endmembers, pixels)  # (p, n)
    fitted = np.linalg.lstsq(truth, pixels, rcond=None)[0]  # (p, bands)
    fitted_sad = np.diag(sad_matrix(fitted, bench.endmembers))
    for k, material in enumerate(bench.materials or range(len(bench.endmembers))):
        pure = truth[:, k] > PURE
        mean_sad = sad_matrix(pixels[pure].mean(axis=0)[None], bench.endmembers[k][None])[0, 0]
        print(
            f"  {material}: nearest pixel SAD {to_pixels[k].min():.4f} rad; "
            f"mean of the {pure.sum()} pixels with true abundance > {PURE}: SAD {mean_sad:.4f} rad; "
            f"least-squares fit to the image given the true abundances: SAD {fitted_sad[k]:.4f} rad"
        )


def urban_limits(data_dir: str | None, scale: int = 4) -> None:
    """Print the sub-pixel abundance measurements on Urban."""
    bench = load_benchmark("urban", data_dir)
    rows = {r["method"]: r["rmse"] for r in evaluate_sr_unmixing(bench, scale, ["vca-fcls"])}
    baseline = rows["vca-fcls LR + bicubic"]
    print(f"urban x{scale}: abundance RMSE on the HR grid")
    for method, rmse in rows.items():
        print(f"  {method}: {rmse:.4f} ({100 * (rmse / baseline - 1):+.1f} %)")
    print(f"  goal (20 % below the baseline): {0.8 * baseline:.4f}")
    ab = bench.abundances
    padded = np.pad(ab, ((0, 0), (1, 1), (1, 1)), mode="edge")
    neighbours = (
        padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    ) / 4
    rmse = np.sqrt(((neighbours - ab) ** 2).reshape(len(ab), -1).mean(axis=1)).mean()
    print(
        f"  the true HR abundances predicted by the mean of their 4 true HR neighbours: {rmse:.4f}"
    )


def main() -> None:
    """Parse the arguments and print every measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="default: $XR_UNMIXSR_DATA")
    args = parser.parse_args()
    warnings.simplefilter("ignore", MissingCRSWarning)
    for name in ("jasper", "samson"):
        unmixing_limits(name, args.data_dir)
    urban_limits(args.data_dir)


if __name__ == "__main__":
    main()
