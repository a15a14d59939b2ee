"""Many scenes in one job: globs and lists, outputs as each scene completes, failures isolated."""

from __future__ import annotations

from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import xr_unmixsr
from xr_unmixsr.cli import main
from xr_unmixsr.errors import ParameterError
from xr_unmixsr.io import open_raster, write_raster
from xr_unmixsr.scenes import (
    SceneOutcome,
    expand_scenes,
    scene_outputs,
    unmix_scenes,
    upscale_scenes,
)


def _scene(seed: int, size: int = 24, bands: int = 6) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        (100 + 50 * rng.random((bands, size, size))).astype(np.float32),
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "y": 5808045.0 - (np.arange(size) + 0.5) * 30.0,
            "x": 366975.0 + seed * 1000 + (np.arange(size) + 0.5) * 30.0,
        },
    ).rio.write_crs("EPSG:32633")


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """scenes/a.tif, scenes/b.tif (valid) and scenes/broken.tif (not a raster)."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    write_raster(_scene(1), folder / "a.tif")
    write_raster(_scene(2), folder / "b.tif")
    (folder / "broken.tif").write_text("not a raster")
    return folder


def test_upscale_many_scenes_one_failure(scenes: Path, tmp_path: Path) -> None:
    seen: list[SceneOutcome] = []
    out = tmp_path / "out"
    outcomes = upscale_scenes([scenes / "*.tif"], out, 2, on_scene=seen.append)
    assert seen == outcomes
    assert [o.input.name for o in outcomes] == ["a.tif", "b.tif", "broken.tif"]
    assert [o.ok for o in outcomes] == [True, True, False]
    assert outcomes[2].error is not None and outcomes[2].error.startswith("RasterIOError")
    assert outcomes[2].outputs == ()
    # only the good scenes' outputs, nothing half-written for the broken one
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.tif", "b_x2.tif"]
    for name in ("a", "b"):
        single = xr_unmixsr.upscale(open_raster(scenes / f"{name}.tif"), 2)
        written = open_raster(out / f"{name}_x2.tif")
        np.testing.assert_array_equal(written.values, single.values)
        assert written.rio.transform() == single.rio.transform()


def test_unmix_many_scenes(scenes: Path, tmp_path: Path) -> None:
    outcomes = unmix_scenes([scenes / "a.tif", scenes / "b.tif"], tmp_path / "ab", 3)
    assert all(o.ok for o in outcomes)
    names = sorted(p.name for p in (tmp_path / "ab").iterdir())
    assert names == sorted(
        f"{s}_abundances{end}" for s in "ab" for end in (".tif", "_rmse.tif", "_endmembers.csv")
    )
    assert outcomes[0].outputs[0] == tmp_path / "ab" / "a_abundances.tif"


def test_expand_scenes(scenes: Path) -> None:
    a, b = scenes / "a.tif", scenes / "b.tif"
    assert expand_scenes([b, scenes / "[ab].tif", a]) == [b, a]
    with pytest.raises(ParameterError, match=r"matches no file"):
        expand_scenes([scenes / "*.zarr"])
    with pytest.raises(ParameterError, match="no input"):
        expand_scenes([])


def test_scene_outputs_refuse_clashes_and_files(tmp_path: Path) -> None:
    inputs = [tmp_path / "one" / "x.tif", tmp_path / "two" / "x.tif"]
    with pytest.raises(ParameterError, match="distinct file names"):
        scene_outputs(inputs, tmp_path / "out", "{stem}_x2.tif")
    (tmp_path / "file").write_text("")
    with pytest.raises(ParameterError, match="is a file"):
        scene_outputs(inputs[:1], tmp_path / "file", "{stem}_x2.tif")


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_cli_glob_reports_the_failed_scene(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, stdout, stderr = _cli(
        ["upscale", str(scenes / "*.tif"), str(out), "--scale", "2", "--quiet"]
    )
    assert rc == 1
    assert "2 of 3 scenes written" in stdout
    assert f"{scenes / 'broken.tif'}: RasterIOError" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.tif", "b_x2.tif"]
    # all good: status 0; existing outputs are kept unless --overwrite
    rc, stdout, _ = _cli(
        ["upscale", str(scenes / "a.tif"), str(scenes / "b.tif"), str(out), "--scale", "2"]
        + ["--quiet", "--overwrite"]
    )
    assert rc == 0 and "2 of 2 scenes written" in stdout
    rc, _, stderr = _cli(
        ["upscale", str(scenes / "a.tif"), str(scenes / "b.tif"), str(out)]
        + ["--scale", "2", "--quiet"]
    )
    assert rc == 1 and stderr.count("OutputExistsError") == 2


def test_cli_many_scenes_bad_job_is_status_2(scenes: Path, tmp_path: Path) -> None:
    rc, _, stderr = _cli(["unmix", str(scenes / "*.hdr"), str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "matches no file" in stderr
    assert not (tmp_path / "o").exists()
