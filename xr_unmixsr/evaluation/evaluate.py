"""The evaluation protocols behind ``xr-unmixsr evaluate`` and the tables in docs/benchmarks.md.

* :func:`evaluate_sr`: the held-out HR cube is degraded (antialiased bicubic, the literature's
  protocol), each model upscales it back, and PSNR, SSIM, SAM and ERGAS are computed against the
  HR cube in reflectance [0, 1] over the bands valid everywhere.
* :func:`evaluate_unmixing`: each method unmixes the scene; estimated endmembers are matched to the
  true ones (Hungarian on SAD), mean SAD (rad) and mean abundance RMSE are reported.
* :func:`evaluate_sr_unmixing`: abundances finer than the pixels. The scene is degraded by
  ``scale``; SMILE and the back-projected VCA-FCLS abundances give abundances on the HR grid
  from the LR scene, the baseline upsamples (bicubic) the abundances VCA-FCLS finds on the LR
  scene; all are scored against the true HR abundances.

Each returns a list of rows (dicts), one per model or method, with the seconds it took.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import geometry
from ..errors import ParameterError
from ..metrics import sr_metrics, unmixing_metrics
from ..models.bicubic import bicubic_resize
from ..sr import degrade, upscale
from ..unmixing.scene import unmix
from ..unmixing.subpixel import AbundanceBackProjection
from .datasets import Benchmark

__all__ = ["evaluate_sr", "evaluate_sr_unmixing", "evaluate_unmixing", "markdown_table"]


def _reflectance(cube: xr.DataArray, data_scale: float) -> np.ndarray:
    values = np.asarray(cube.values, np.float64)
    values[geometry.mask_invalid(values, geometry.layout(cube, warn_crs=False).nodata)] = np.nan
    return values / data_scale


def evaluate_sr(
    hr: xr.DataArray,
    scale: int,
    models: Mapping[str, Any],
    *,
    data_scale: float = 1.0,
    device: str = "auto",
    tile: int = 256,
    batch_size: int = 8,
    back_projection: int = 0,
    self_ensemble: bool = False,
) -> list[dict[str, Any]]:
    """Score SR models on a held-out HR cube degraded by ``scale``.

    Args:
        hr: (band, y, x) HR reference, numpy-backed or small enough to load.
        scale: SR factor.
        models: label -> what :func:`~xr_unmixsr.upscale` takes as ``model`` (``"bicubic"``, a
            shipped name, a checkpoint path or an :class:`~xr_unmixsr.models.SRModel`).
        data_scale: divide the data by this for reflectance in [0, 1] (EnMAP: 10000).
        device, tile, batch_size: as for :func:`~xr_unmixsr.upscale`.
        back_projection: when > 0, every model is also scored with that many back-projection
            steps (``upscale(..., back_projection=)``), in a row labelled
            ``"<label> + back-projection xN"`` after its own.
        self_ensemble: every model is also scored as a self-ensemble
            (``upscale(..., self_ensemble=True)``), labelled ``"<label> + self-ensemble"`` (with
            and without the back-projection steps).

    Returns:
        One row per model and setting: ``model``, ``psnr`` (dB), ``ssim``,
        ``sam`` (degrees), ``ergas``, ``seconds`` (the upscaling).
    """
    lr = degrade(hr, scale)
    hr = hr.isel(y=slice(0, lr.sizes["y"] * scale), x=slice(0, lr.sizes["x"] * scale))
    ref = _reflectance(hr, data_scale)
    bands = np.isfinite(ref).all(axis=(1, 2))
    rows = []
    settings = itertools.product(
        models.items(), sorted({False, self_ensemble}), sorted({0, back_projection})
    )
    for (label, model), ensemble, steps in settings:
        start = time.perf_counter()
        sr = upscale(
            lr,
            scale,
            model,
            device=device,
            tile=tile,
            batch_size=batch_size,
            back_projection=steps,
            self_ensemble=ensemble,
        ).compute()
        seconds = time.perf_counter() - start
        est = _reflectance(sr, data_scale)
        metrics = sr_metrics(ref[bands], est[bands], scale=scale)
        name = label + (" + self-ensemble" if ensemble else "")
        name += f" + back-projection x{steps}" if steps else ""
        rows.append({"model": name, **metrics, "seconds": seconds})
    return rows


def _score(bench: Benchmark, endmembers: np.ndarray, abundances: np.ndarray) -> dict[str, Any]:
    if bench.endmembers is None or bench.abundances is None:
        raise ValueError(f"benchmark {bench.name!r} has no ground truth")
    m = unmixing_metrics(endmembers, bench.endmembers, abundances, bench.abundances)
    return {
        "sad": m["sad_mean"],
        "rmse": m["rmse_mean"],
        "sad_per_endmember": m["sad_per_endmember"],
        "rmse_per_endmember": m["rmse_per_endmember"],
    }


def evaluate_unmixing(
    bench: Benchmark,
    methods: Sequence[str] = ("vca-fcls", "autoencoder", "smile"),
    *,
    scale: int = 2,
    typical: bool = False,
    training: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Score unmixing methods on a scene with true endmembers and abundances.

    SMILE unmixes the scene on a ``scale`` times finer grid (its abundances are averaged back
    over each ``scale x scale`` block to be scored on the scene's grid). ``typical`` is given to
    ``unmix`` (the rows' methods then end in ``" (typical)"``); ``training`` to the trainers of
    the autoencoder and SMILE.

    Returns:
        One row per method: ``method``, ``sad`` (mean, rad), ``rmse`` (mean abundance RMSE),
        per-endmember values and ``seconds``.
    """
    p = len(bench.endmembers) if bench.endmembers is not None else None
    rows = []
    for method in methods:
        start = time.perf_counter()
        res = unmix(
            bench.cube,
            p,
            method,
            scale=scale if method == "smile" else None,
            typical=typical,
            training=training,
            seed=seed,
            device=device,
        ).compute()
        seconds = time.perf_counter() - start
        ab = res["abundances"].values.astype(np.float64)
        if method == "smile":
            n, h, w = ab.shape
            ab = ab.reshape(n, h // scale, scale, w // scale, scale).mean(axis=(2, 4))
        em = res["endmembers"].values.astype(np.float64)
        label = f"{method} (typical)" if typical else method
        rows.append({"method": label, **_score(bench, em, ab), "seconds": seconds})
    return rows


def _bicubic_up(values: np.ndarray, scale: int) -> np.ndarray:
    with torch.inference_mode():
        up = bicubic_resize(torch.from_numpy(values.astype(np.float32))[None], scale)[0]
    return up.numpy().astype(np.float64)


def evaluate_sr_unmixing(
    bench: Benchmark,
    scale: int = 4,
    methods: Sequence[str] = ("vca-fcls", "smile"),
    *,
    typical: bool = False,
    training: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """SR-guided unmixing vs upsampled LR unmixing, on a scene with true HR abundances.

    The scene (the HR truth) is degraded by ``scale``. Rows (``methods`` picks among the
    back-projected VCA-FCLS abundances, ``"vca-fcls"``, and ``"smile"``; ``typical`` is given
    to every ``unmix`` call):

    * ``vca-fcls LR + bicubic``: VCA-FCLS on the LR scene, abundances bicubic-upsampled;
    * ``vca-fcls LR + back-projection``: the same abundances back-projected onto the HR grid
      (``unmix(method="vca-fcls", scale=scale)``);
    * ``smile``: SMILE trained on the LR scene, abundances on the HR grid;
    * ``true LR abundances + bicubic`` / ``+ back-projection`` (references): the true HR
      abundances degraded like the scene and brought back by either operator, i.e. what each
      does with perfect LR unmixing.

    Returns:
        One row per method: ``method``, ``rmse`` against the true HR abundances (matched by the
        endmembers), ``sad``, ``seconds``.
    """
    if bench.abundances is None or bench.endmembers is None:
        raise ValueError(f"benchmark {bench.name!r} has no ground truth")
    lr = degrade(bench.cube, scale)
    h, w = lr.sizes["y"] * scale, lr.sizes["x"] * scale
    truth = Benchmark(
        bench.name,
        bench.cube.isel(y=slice(0, h), x=slice(0, w)),
        endmembers=bench.endmembers,
        abundances=bench.abundances[:, :h, :w],
    )
    p = len(bench.endmembers)
    rows = []

    start = time.perf_counter()
    res = unmix(lr, p, "vca-fcls", typical=typical, seed=seed).compute()
    ab_up = _bicubic_up(res["abundances"].values, scale)
    row = _score(truth, res["endmembers"].values.astype(np.float64), ab_up)
    rows.append({"method": "vca-fcls LR + bicubic", **row, "seconds": time.perf_counter() - start})

    labels = {"vca-fcls": "vca-fcls LR + back-projection", "smile": "smile"}
    unknown = set(methods) - set(labels)
    if unknown:
        raise ParameterError(f"unknown methods {sorted(unknown)}: use some of {list(labels)}")
    for method in methods:
        start = time.perf_counter()
        res = unmix(
            lr, p, method, scale=scale, typical=typical, training=training, seed=seed, device=device
        )
        res = res.compute()
        em, ab = res["endmembers"].values, res["abundances"].values
        row = _score(truth, em.astype(np.float64), ab.astype(np.float64))
        rows.append({"method": labels[method], **row, "seconds": time.perf_counter() - start})

    with torch.inference_mode():
        true_lr = bicubic_resize(
            torch.from_numpy(truth.abundances.astype(np.float32))[None], 1.0 / scale
        )
        references = {
            "bicubic": _bicubic_up(true_lr[0].numpy(), scale),
            "back-projection": AbundanceBackProjection(scale)(true_lr)[0].numpy(),
        }
    for label, fine in references.items():
        err = np.sqrt(((fine - truth.abundances) ** 2).reshape(p, -1).mean(axis=1))
        rows.append(
            {
                "method": f"true LR abundances + {label} (reference)",
                "sad": 0.0,
                "rmse": float(err.mean()),
                "rmse_per_endmember": err.tolist(),
                "seconds": 0.0,
            }
        )
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` restricted to ``columns`` (floats with 4 significant digits)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
