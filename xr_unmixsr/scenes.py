"""Many scenes in one job: a list or glob of inputs, each output written as soon as it is done.

Scenes run one after another on whatever dask runs on (the local threads, or a cluster through
:func:`~xr_unmixsr.distributed.client_for`), each with all of it, so a cluster is started once
for the whole job. Every output is written atomically as its scene completes; a scene that fails
is reported in its :class:`SceneOutcome` and the job goes on with the next one. An interrupt
(Ctrl-C) stops the job: the finished outputs stay, the current one is not left half-written.
"""

from __future__ import annotations

import glob
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError
from .io import open_raster, output_format, write_raster
from .models import get_model
from .sr import upscale
from .unmixing.scene import unmix, write_unmixing

_GLOB_CHARS = "*?["


def is_pattern(text: str | os.PathLike[str]) -> bool:
    """True when ``text`` is a glob pattern rather than one path."""
    return any(c in str(text) for c in _GLOB_CHARS)


@dataclass(frozen=True)
class SceneOutcome:
    """What became of one scene of a job.

    Attributes:
        input: the scene.
        outputs: the files written (empty when the scene failed).
        error: ``"ErrorType: message"`` when the scene failed, else None.
        seconds: wall time spent on the scene.
    """

    input: Path
    outputs: tuple[Path, ...]
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the scene was processed and written."""
        return self.error is None


def expand_scenes(specs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand glob patterns (``*``, ``?``, ``[...]``, ``**``) and drop repeats, in order.

    A plain path is kept even if it does not exist (its scene then fails on its own).

    Raises:
        ParameterError: no input given, or a pattern matches no file.
    """
    paths: list[Path] = []
    for spec in specs:
        text = str(spec)
        if is_pattern(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ParameterError(f"the pattern {text!r} matches no file: check the path")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(text))
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise ParameterError("no input scene given")
    return unique


def scene_outputs(inputs: Sequence[Path], out_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """The output path of each input: ``out_dir / name.format(stem=<input stem>)``.

    Raises:
        ParameterError: two inputs would write the same output, or ``out_dir`` is a file.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(
            f"{folder} is a file: with several input scenes the output is a folder"
        )
    outputs = [folder / name.format(stem=p.name.split(".")[0]) for p in inputs]
    output_format(outputs[0])
    clashes = sorted(str(o) for o, n in Counter(outputs).items() if n > 1)
    if clashes:
        raise ParameterError(
            f"several input scenes would be written to {', '.join(clashes)}: give scenes with "
            "distinct file names, or process them in separate jobs"
        )
    return outputs


def process_scenes(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    run: Callable[[Path, Path], Sequence[Path]],
    *,
    name: str,
    on_scene: Callable[[SceneOutcome], None] | None = None,
) -> list[SceneOutcome]:
    """Run ``run(input, output)`` on every scene, one after another; a failure stops only its scene.

    Args:
        inputs: scene paths or glob patterns (:func:`expand_scenes`).
        out_dir: folder of the outputs (created if missing).
        run: processes one scene and returns the paths it wrote.
        name: output file name, ``{stem}`` standing for the input's name without suffixes.
        on_scene: called with each scene's outcome as soon as the scene is done.

    Returns:
        The outcomes, in input order.
    """
    scenes = expand_scenes(inputs)
    outputs = scene_outputs(scenes, out_dir, name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    outcomes = []
    for src, dst in zip(scenes, outputs, strict=True):
        start = time.perf_counter()
        try:
            written, error = tuple(run(src, dst)), None
        except Exception as exc:  # any failure of one scene: reported, the job goes on
            written, error = (), f"{type(exc).__name__}: {exc}"
        outcome = SceneOutcome(src, written, error, time.perf_counter() - start)
        outcomes.append(outcome)
        if on_scene is not None:
            on_scene(outcome)
    return outcomes


def upscale_scenes(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    scale: int,
    model: Any = "bicubic",
    *,
    name: str | None = None,
    chunk: int = 512,
    overwrite: bool = False,
    cog: bool = False,
    progress: bool = False,
    on_scene: Callable[[SceneOutcome], None] | None = None,
    **kwargs: Any,
) -> list[SceneOutcome]:
    """Upscale many scenes into ``out_dir`` (:func:`xr_unmixsr.upscale` on each).

    The model is loaded once for the whole job. ``name`` defaults to ``"{stem}_x<scale>.tif"``;
    ``kwargs`` go to :func:`xr_unmixsr.upscale` (tile, batch_size, device, precision...).

    Raises:
        ParameterError, ModelError, UnsupportedScaleError: problems of the whole job (a pattern
            that matches nothing, an unknown model...), before any scene runs.
    """
    net = get_model(model, int(scale))

    def run(src: Path, dst: Path) -> list[Path]:
        sr = upscale(open_raster(src, chunks={"y": chunk, "x": chunk}), scale, net, **kwargs)
        return [write_raster(sr, dst, overwrite=overwrite, cog=cog, progress=progress)]

    return process_scenes(
        inputs, out_dir, run, name=name or f"{{stem}}_x{net.scale}.tif", on_scene=on_scene
    )


def unmix_scenes(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    n_endmembers: int | None = None,
    method: str = "vca-fcls",
    *,
    name: str = "{stem}_abundances.tif",
    chunk: int = 512,
    overwrite: bool = False,
    progress: bool = False,
    on_scene: Callable[[SceneOutcome], None] | None = None,
    **kwargs: Any,
) -> list[SceneOutcome]:
    """Unmix many scenes into ``out_dir`` (:func:`xr_unmixsr.unmix` on each).

    Each scene gets its own endmembers (and, for the deep methods, its own training unless
    ``model`` is given in ``kwargs``); outputs as in ``xr-unmixsr unmix`` (a GeoTIFF with its
    ``_rmse.tif`` and ``_endmembers.csv``, or one Zarr store).
    """

    def run(src: Path, dst: Path) -> list[Path]:
        res = unmix(
            open_raster(src, chunks={"y": chunk, "x": chunk}), n_endmembers, method, **kwargs
        )
        return list(write_unmixing(res, dst, overwrite=overwrite, progress=progress).values())

    return process_scenes(inputs, out_dir, run, name=name, on_scene=on_scene)
