"""The ``xr-unmixsr`` command line: argument translation around the core functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import __version__
from .distributed import sigint_remembered
from .errors import UnmixSRError


def _chunks(args: argparse.Namespace) -> dict[str, int]:
    return {"y": args.chunk, "x": args.chunk}


def _cluster(args: argparse.Namespace) -> AbstractContextManager[Any]:
    from .distributed import client_for

    return client_for(workers=args.workers, scheduler=args.scheduler)


def _many_scenes(args: argparse.Namespace) -> bool:
    from .scenes import is_pattern

    return len(args.input) > 1 or is_pattern(args.input[0])


def _job_status(outcomes: Sequence[Any]) -> int:
    """Print the failed scenes of a many-scene job; its exit status (1 if any failed)."""
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} scenes written")
    for o in failed:
        print(f"xr-unmixsr: error: {o.input}: {o.error}", file=sys.stderr)
    return 1 if failed else 0


def _print_outcome(outcome: Any) -> None:
    if outcome.ok:
        written = ", ".join(map(str, outcome.outputs))
        print(f"wrote {written} ({outcome.seconds:.1f} s)", flush=True)
    else:
        print(f"FAILED {outcome.input}: {outcome.error}", flush=True)


def _one_or_many(
    args: argparse.Namespace,
    one: Callable[[], str],
    many: Callable[..., Sequence[Any]],
    *many_args: Any,
    **many_kwargs: Any,
) -> int:
    """Run one scene (``one()`` returns what to print) or, for several inputs or a pattern, the
    many-scene job ``many(inputs, folder, *many_args, ...)``; in the cluster of ``args``."""
    with _cluster(args):
        if _many_scenes(args):
            outcomes = many(
                args.input,
                args.output,
                *many_args,
                chunk=args.chunk,
                overwrite=args.overwrite,
                progress=not args.quiet,
                on_scene=_print_outcome,
                **many_kwargs,
            )
            return _job_status(outcomes)
        print(one())
    return 0


def _cmd_upscale(args: argparse.Namespace) -> int:
    from .io import open_raster, write_raster
    from .scenes import upscale_scenes
    from .sr import upscale

    options = dict(
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        back_projection=args.back_projection,
        self_ensemble=args.self_ensemble,
    )

    def one() -> str:
        cube = open_raster(args.input[0], chunks=_chunks(args))
        sr = upscale(cube, args.scale, args.model, **options)
        write_raster(
            sr, args.output, overwrite=args.overwrite, cog=args.cog, progress=not args.quiet
        )
        return f"wrote {args.output}: {dict(sr.sizes)}"

    return _one_or_many(args, one, upscale_scenes, args.scale, args.model, cog=args.cog, **options)


def _cmd_unmix(args: argparse.Namespace) -> int:
    from .io import open_raster
    from .scenes import unmix_scenes
    from .unmixing.scene import unmix, write_unmixing

    options = dict(
        scale=args.scale,
        typical=args.typical,
        model=args.model,
        training={**_training_options(args), "progress": not args.quiet},
        seed=args.seed,
        device=args.device,
    )

    def one() -> str:
        cube = open_raster(args.input[0], chunks=_chunks(args))
        res = unmix(cube, args.n_endmembers, args.method, **options)
        paths = write_unmixing(res, args.output, overwrite=args.overwrite, progress=not args.quiet)
        n = res.attrs["n_endmembers"]
        return f"wrote {', '.join(map(str, paths.values()))} ({n} endmembers)"

    return _one_or_many(args, one, unmix_scenes, args.n_endmembers, args.method, **options)


def _cmd_train(args: argparse.Namespace) -> None:
    from .io import open_raster
    from .training import train_sr

    cubes = [open_raster(path, chunks=_chunks(args)) for path in args.inputs]
    sampler_kwargs: dict[str, object] = {
        "degradation": args.degradation,
        "gaussian_sigma": args.gaussian_sigma,
    }
    if args.lr_inputs:
        sampler_kwargs["lr_cubes"] = [
            open_raster(path, chunks=_chunks(args)) for path in args.lr_inputs
        ]
    result = train_sr(
        cubes,
        args.scale,
        architecture=args.architecture,
        n_endmembers=args.n_endmembers,
        features=args.features,
        n_grams=args.n_grams,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        patch=args.patch,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_halving_epochs=args.lr_halving_epochs or None,
        ae_epochs=args.ae_epochs,
        model=args.model,
        seed=args.seed,
        device=args.device,
        checkpoint=args.output,
        resume=not args.restart,
        progress=not args.quiet,
        sampler_kwargs=sampler_kwargs,
        info={"command": "xr-unmixsr " + " ".join(args.argv)},
    )
    print(
        f"wrote {result.checkpoint}: {len(result.history)} epochs, final losses {result.final_losses}"
    )


def _labelled(specs: Sequence[str]) -> dict[str, str]:
    """``label=model`` or ``model`` (labelled by its file stem) -> {label: model}."""
    from .models import checkpoint_stem

    out = {}
    for spec in specs:
        label, sep, model = spec.partition("=")
        out[label if sep else checkpoint_stem(spec).name] = model if sep else spec
    return out


def _training_options(args: argparse.Namespace) -> dict[str, int]:
    pairs = (("epochs", args.epochs), ("steps_per_epoch", args.steps_per_epoch))
    return {k: v for k, v in pairs if v is not None}


def _report(rows: list[dict], columns: list[str], args: argparse.Namespace) -> None:
    from .evaluation.evaluate import markdown_table

    print(markdown_table(rows, columns))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import warnings

    from .errors import MissingCRSWarning
    from .evaluation import datasets

    # the unmixing and SR benchmarks are not georeferenced, and need not be
    warnings.simplefilter("ignore", MissingCRSWarning)
    from .evaluation.evaluate import evaluate_sr, evaluate_sr_unmixing, evaluate_unmixing

    if args.task == "sr":
        if args.scene in datasets.SR_SPLITS:
            bench = datasets.load_sr_split(args.scene, "test", args.data_dir)
        else:
            from .io import open_raster

            bench = datasets.Benchmark(args.scene, open_raster(args.scene), args.data_scale)
        models = {"bicubic": "bicubic", **_labelled(args.model or [])}
        rows = evaluate_sr(
            bench.cube,
            args.scale,
            models,
            data_scale=bench.data_scale,
            device=args.device,
            back_projection=args.back_projection,
            self_ensemble=args.self_ensemble,
        )
        _report(rows, ["model", "psnr", "ssim", "sam", "ergas", "seconds"], args)
        return
    bench = datasets.load_benchmark(args.scene, args.data_dir)
    training = _training_options(args)
    if args.task == "unmix":
        rows = evaluate_unmixing(
            bench,
            args.method or ["vca-fcls", "autoencoder", "smile"],
            scale=args.scale or 2,
            typical=args.typical,
            training=training,
            seed=args.seed,
            device=args.device,
        )
    else:
        rows = evaluate_sr_unmixing(
            bench,
            args.scale or 4,
            args.method or ["vca-fcls", "smile"],
            typical=args.typical,
            training=training,
            seed=args.seed,
            device=args.device,
        )
    _report(rows, ["method", "sad", "rmse", "seconds"], args)


def _cmd_info(args: argparse.Namespace) -> None:
    from .io import describe

    print(json.dumps(describe(args.input), indent=2))


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo.run import run_demo

    run_demo(args.outdir, scale=args.scale, size=args.size, overwrite=args.overwrite)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xr-unmixsr``."""
    parser = argparse.ArgumentParser(
        prog="xr-unmixsr", description="Hyperspectral super-resolution and unmixing."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "input",
            nargs="+",
            help="input raster: GeoTIFF, ENVI or any GDAL-readable file, or .zarr; several "
            "inputs or a quoted glob pattern ('scenes/*.tif') make one job over many scenes",
        )
        p.add_argument(
            "output",
            help="output: .tif (GeoTIFF) or .zarr; with many scenes, a folder (one output per "
            "scene, written as soon as the scene is done)",
        )
        p.add_argument(
            "--chunk",
            type=int,
            default=512,
            help="dask chunk size in pixels (default 512); memory follows it",
        )
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def refinements(p: argparse.ArgumentParser, more: str = "") -> None:
        p.add_argument(
            "--back-projection",
            type=int,
            default=0,
            metavar="STEPS",
            help="iterative back-projection steps after the model, making the output consistent "
            f"with the input (default 0: off; 5 converges){more}",
        )
        p.add_argument(
            "--self-ensemble",
            action="store_true",
            help="average the model over the 8 flips and quarter turns of each patch (8 times "
            f"the compute){more}",
        )

    def cluster(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="run on a local dask.distributed cluster of N worker processes (one thread each)",
        )
        p.add_argument(
            "--scheduler",
            default=None,
            help="run on an existing dask.distributed cluster: its scheduler address "
            "(tcp://host:8786)",
        )

    up = sub.add_parser("upscale", help="super-resolve a scene")
    common(up)
    up.add_argument(
        "--scale", type=int, required=True, help="upsampling factor (2, 3, 4, 8 for bicubic)"
    )
    up.add_argument(
        "--model", default="bicubic", help="'bicubic', a shipped model name or a checkpoint path"
    )
    up.add_argument(
        "--tile", type=int, default=256, help="patch size fed to the model (default 256)"
    )
    up.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="context pixels per patch (default: the model's receptive field)",
    )
    up.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="patches per model call (default: 8 on a CPU, sized to free memory on a GPU)",
    )
    up.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    up.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="fp32, or mixed precision for the network (bf16/fp16: faster on GPUs)",
    )
    refinements(up)
    up.add_argument("--cog", action="store_true", help="write a Cloud Optimized GeoTIFF")
    cluster(up)
    up.set_defaults(func=_cmd_upscale)

    un = sub.add_parser("unmix", help="estimate endmembers and abundance maps")
    common(un)
    un.add_argument(
        "--n-endmembers", type=int, default=None, help="number of endmembers (default: estimated)"
    )
    un.add_argument(
        "--method",
        default="vca-fcls",
        help="vca-fcls (default), autoencoder or smile",
    )
    un.add_argument(
        "--scale",
        type=int,
        default=None,
        help="abundances on a grid 2, 3, 4 or 8 times finer: predicted by smile (required "
        "there), back-projected for vca-fcls and autoencoder",
    )
    un.add_argument(
        "--typical",
        action="store_true",
        help="refine each VCA endmember to the most typical of the pixels most abundant in it "
        "(real scenes whose pure pixels vary; see docs/unmix.md)",
    )
    un.add_argument(
        "--model",
        default=None,
        help="autoencoder/smile: a trained checkpoint to apply instead of training on the scene",
    )
    un.add_argument(
        "--epochs", type=int, default=None, help="autoencoder/smile: training epochs (default 20)"
    )
    un.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="autoencoder/smile: optimiser steps per epoch (default 50)",
    )
    un.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    un.add_argument("--seed", type=int, default=0, help="seed of the pixel sample, VCA, training")
    cluster(un)
    un.set_defaults(func=_cmd_unmix)

    tr = sub.add_parser(
        "train", help="train an SR model on scenes (self-supervised: no HR reference needed)"
    )
    tr.add_argument(
        "inputs", nargs="+", help="training scenes (the HR side; LR is made by degrading them)"
    )
    tr.add_argument(
        "--output",
        required=True,
        help="checkpoint path (.safetensors; a .json card is written beside it)",
    )
    tr.add_argument("--scale", type=int, required=True, help="SR factor (2, 3, 4, 8)")
    tr.add_argument(
        "--architecture",
        default="unmixingsr",
        help="unmixingsr, unmixingsr-nomam, convsr, convsr-aux or unmixingsr-aux",
    )
    tr.add_argument(
        "--model",
        default=None,
        help="fine-tune this model (a shipped name or a checkpoint) instead of training a new "
        "one: it keeps its shape and normalisation; --architecture must train it (unmixingsr "
        "for the shipped models)",
    )
    tr.add_argument(
        "--n-endmembers",
        type=int,
        default=8,
        help="endmembers of the auxiliary unmixing (default 8)",
    )
    tr.add_argument("--features", type=int, default=32, help="feature channels (default 32)")
    tr.add_argument("--n-grams", type=int, default=4, help="GRAM blocks (default 4)")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--steps-per-epoch", type=int, default=100)
    tr.add_argument("--patch", type=int, default=64, help="HR patch size (default 64)")
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--lr", type=float, default=5e-4)
    tr.add_argument(
        "--lr-halving-epochs",
        type=int,
        default=40,
        help="halve the learning rate every N epochs (default 40, as the paper; 0: never)",
    )
    tr.add_argument(
        "--ae-epochs",
        type=int,
        default=None,
        help="train the unmixing autoencoder (step I) in the first N epochs only (default: all)",
    )
    tr.add_argument(
        "--degradation",
        choices=("bicubic", "gaussian"),
        default="bicubic",
        help="how the LR side is made from the scene: antialiased bicubic (default) or a "
        "Gaussian PSF and decimation",
    )
    tr.add_argument(
        "--gaussian-sigma",
        type=float,
        default=None,
        help="--degradation gaussian: the PSF's standard deviation in HR pixels (default "
        "0.5 x scale)",
    )
    tr.add_argument(
        "--lr-inputs",
        nargs="+",
        default=None,
        help="paired training: co-registered LR scenes, one per input and in the same order, "
        "used instead of degrading the inputs",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    tr.add_argument("--chunk", type=int, default=512, help="dask chunk size for reading the scenes")
    tr.add_argument(
        "--restart", action="store_true", help="ignore a saved training state and start over"
    )
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser(
        "evaluate", help="score SR models and unmixing methods on scenes with ground truth"
    )
    ev_sub = ev.add_subparsers(dest="task", required=True)
    ev_sr = ev_sub.add_parser(
        "sr", help="degrade a held-out HR scene, upscale it back, print PSNR/SSIM/SAM/ERGAS"
    )
    ev_sr.add_argument(
        "scene", help="a benchmark (enmap, indian-pines, urban: its test part) or a raster path"
    )
    ev_sr.add_argument("--scale", type=int, required=True)
    ev_sr.add_argument(
        "--model",
        action="append",
        help="a model to score besides bicubic, as NAME or LABEL=NAME (repeatable)",
    )
    ev_sr.add_argument(
        "--data-scale",
        type=float,
        default=1.0,
        help="a raster scene's value of reflectance 1 (e.g. 10000)",
    )
    refinements(ev_sr, "; every model is scored with and without it")
    ev_un = ev_sub.add_parser(
        "unmix", help="unmix a scene with true endmembers/abundances, print SAD and RMSE"
    )
    ev_un.add_argument("scene", help="jasper, samson or urban")
    ev_un.add_argument(
        "--method",
        action="append",
        help="vca-fcls, autoencoder, smile (repeatable; default all three)",
    )
    ev_sm = ev_sub.add_parser(
        "sr-unmix",
        help="abundances on a finer grid (SMILE, back-projection) vs bicubic-upsampled LR "
        "abundances on a degraded scene",
    )
    ev_sm.add_argument("scene", help="a scene with true abundances: urban, jasper or samson")
    ev_sm.add_argument(
        "--method",
        action="append",
        help="vca-fcls (back-projected), smile (repeatable; default both); the bicubic "
        "baseline and the references are always scored",
    )
    for p in (ev_un, ev_sm):
        p.add_argument(
            "--typical", action="store_true", help="unmix with typical=True (see docs/unmix.md)"
        )
        p.add_argument(
            "--scale", type=int, default=None, help="smile's factor (unmix: 2, sr-unmix: 4)"
        )
        p.add_argument("--epochs", type=int, default=None, help="training epochs (default 20)")
        p.add_argument("--steps-per-epoch", type=int, default=None, help="default 50")
        p.add_argument("--seed", type=int, default=0)
    for p in (ev_sr, ev_un, ev_sm):
        p.add_argument(
            "--data-dir", default=None, help="benchmark folder (default: $XR_UNMIXSR_DATA)"
        )
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        p.add_argument("--json", default=None, help="also write the rows to this JSON file")
        p.set_defaults(func=_cmd_evaluate)

    info = sub.add_parser("info", help="describe a raster")
    info.add_argument("input")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser(
        "demo", help="make a synthetic scene, upscale and unmix it, print metrics"
    )
    demo.add_argument("outdir")
    demo.add_argument("--scale", type=int, default=4)
    demo.add_argument("--size", type=int, default=256, help="HR scene size in pixels")
    demo.add_argument("--overwrite", action="store_true")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 some scenes of a many-scene job failed,
    2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        with sigint_remembered():  # a Ctrl-C that Python drops still stops a cluster run
            status = args.func(args)
    except UnmixSRError as exc:
        print(f"xr-unmixsr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xr-unmixsr: interrupted; the output being written was removed", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
