"""The ``demo`` job: a synthetic scene through the whole pipeline, scored against its truth."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..io import write_rasters
from ..metrics import sr_metrics, unmixing_metrics
from ..models.backprojection import CONVERGED_STEPS
from ..sr import degrade, upscale
from ..unmixing.scene import unmix
from .quicklook import abundance_png, comparison_png, endmember_png, true_colour_png
from .scene import make_demo_scene


def run_demo(
    outdir: str | os.PathLike[str],
    *,
    scale: int = 4,
    size: int = 256,
    overwrite: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the demo scene, degrade it by ``scale``, upscale and unmix it, write and score it.

    The SR metrics are those of bicubic upsampling, alone and followed by
    :data:`~xr_unmixsr.models.backprojection.CONVERGED_STEPS` back-projection steps
    (``upscale(..., back_projection=)``).
    Writes into ``outdir``: ``truth_hr.tif``, ``lr.tif``, ``upscaled_x{scale}.tif`` (bicubic),
    ``abundances.tif`` (+ ``abundances_rmse.tif``), ``abundances_x{scale}.tif`` (on the HR grid,
    back-projected), PNG quicklooks and ``metrics.json``; prints the metrics. Returns them.
    """
    t0 = time.perf_counter()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_demo_scene(size, size, seed=seed)
    hr = scene["reflectance"]
    lr = degrade(hr, scale).chunk({"y": 32, "x": 32})
    sr = upscale(lr, scale)
    sr_bp = upscale(lr, scale, back_projection=CONVERGED_STEPS)
    res = unmix(lr, n_endmembers=scene.sizes["endmember"], seed=seed)
    # the same endmembers, abundances back-projected onto the HR grid
    fine = unmix(lr, endmembers=res["endmembers"], scale=scale)
    paths = write_rasters(
        [
            (sr, out / f"upscaled_x{scale}.tif"),
            (hr, out / "truth_hr.tif"),
            (lr, out / "lr.tif"),
            (res["abundances"], out / "abundances.tif"),
            (res["rmse"], out / "abundances_rmse.tif"),
            (fine["abundances"], out / f"abundances_x{scale}.tif"),
        ],
        overwrite=overwrite,
    )
    sr_v, sr_bp, res, fine = sr.compute(), sr_bp.compute(), res.compute(), fine.compute()
    true_lr_ab = degrade(scene["abundances"].rename(endmember="band"), scale).rename(
        band="endmember"
    )
    scores = unmixing_metrics(
        res["endmembers"].values,
        scene["endmembers"].values,
        res["abundances"].values,
        true_lr_ab.values,
    )
    metrics: dict[str, Any] = {
        "scene": {"size": size, "bands": hr.sizes["band"], "scale": scale, "crs": str(hr.rio.crs)},
        f"bicubic_x{scale}": sr_metrics(hr.values, sr_v.values, scale=scale),
        f"bicubic_x{scale}_back_projection": sr_metrics(hr.values, sr_bp.values, scale=scale),
        "unmixing_vca_fcls": {k: scores[k] for k in ("sad_mean", "rmse_mean")},
        f"abundances_x{scale}": _fine_scores(scene, res, fine, scores["order"], scale),
    }
    # the estimated endmembers, in the order of (and named after) the true ones they match
    matched = res.isel(endmember=scores["order"]).assign_coords(endmember=scene["endmember"].values)
    pngs = [
        comparison_png({"LR": lr, f"bicubic x{scale}": sr_v, "truth": hr}, out / "comparison.png"),
        true_colour_png(hr, out / "truth_rgb.png"),
        abundance_png(matched["abundances"], out / "abundances.png"),
        endmember_png(matched["endmembers"], out / "endmembers.png", truth=scene["endmembers"]),
    ]
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"demo scene {size}x{size}x{hr.sizes['band']} ({hr.rio.crs}), degraded x{scale}, in {metrics['seconds']} s"
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "seconds"}, indent=2, default=float))
    print("wrote", ", ".join(p.name for p in [*paths, *pngs]), "and metrics.json to", out)
    return metrics


def _fine_scores(
    scene: xr.Dataset, res: xr.Dataset, fine: xr.Dataset, order: np.ndarray, scale: int
) -> dict[str, float]:
    """Abundance RMSE on the HR grid against the true HR abundances: the LR abundances
    bicubic-upsampled, and back-projected (``unmix(..., scale=)``)."""
    truth = scene["abundances"].values

    def rmse(estimate: np.ndarray) -> float:
        return float(np.sqrt(((estimate[order] - truth) ** 2).mean(axis=(1, 2))).mean())

    up = upscale(res["abundances"].rename(endmember="band"), scale).values
    return {"rmse_bicubic": rmse(up), "rmse_backprojection": rmse(fine["abundances"].values)}


__all__ = ["run_demo"]
