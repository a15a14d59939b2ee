"""The installable zip built by ``python -m qgis_plugin.build``."""

from __future__ import annotations

import configparser
import zipfile
from pathlib import Path
from typing import Any


def test_zip_holds_the_plugin_folder(plugin_zip: Path) -> None:
    with zipfile.ZipFile(plugin_zip) as zf:
        names = sorted(zf.namelist())
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("xr_unmixsr_qgis/metadata.txt").decode())
    assert names == [
        f"xr_unmixsr_qgis/{n}"
        for n in (
            "__init__.py",
            "algorithms.py",
            "bridge.py",
            "metadata.txt",
            "plugin.py",
            "provider.py",
        )
    ]
    general = meta["general"]
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"].startswith("3.")
    for key in ("name", "description", "about", "version", "author"):
        assert general[key]


def test_unzipped_plugin_is_enabled_by_qgis_process(qgis_process: Any) -> None:
    # the fixture unzipped the plugin and ran `qgis_process.bin plugins enable` on it
    listed = qgis_process("plugins")
    assert listed.returncode == 0
    line = next(ln for ln in listed.stdout.splitlines() if "xr_unmixsr_qgis" in ln)
    assert line.lstrip().startswith("*")  # enabled
