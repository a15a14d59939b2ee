"""Build the installable plugin zip: ``python -m qgis_plugin.build [DEST_DIR]`` (default ``dist``).

The zip holds one folder, ``xr_unmixsr_qgis/``, with the plugin's modules and ``metadata.txt``:
what QGIS's *Plugins > Manage and Install Plugins > Install from ZIP* expects. This script is
not part of the plugin and is left out of the zip.
"""

from __future__ import annotations

import argparse
import configparser
import zipfile
from collections.abc import Sequence
from pathlib import Path

#: the plugin's folder name inside the zip, i.e. its name in QGIS's plugin folder.
PLUGIN_NAME = "xr_unmixsr_qgis"
SOURCE = Path(__file__).resolve().parent
_SUFFIXES = (".py", ".txt", ".png", ".svg")


def plugin_files() -> list[Path]:
    """The files that go into the zip (the plugin's modules and metadata, not this script)."""
    return sorted(
        p
        for p in SOURCE.iterdir()
        if p.is_file() and p.suffix in _SUFFIXES and p.name != Path(__file__).name
    )


def version() -> str:
    """The plugin version from ``metadata.txt``."""
    meta = configparser.ConfigParser()
    meta.read(SOURCE / "metadata.txt", encoding="utf-8")
    return meta["general"]["version"]


def build(dest: str | Path = "dist") -> Path:
    """Write ``<dest>/xr_unmixsr_qgis.zip`` (replacing an older one) and return its path."""
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{PLUGIN_NAME}.zip"
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files():
            zf.write(path, f"{PLUGIN_NAME}/{path.name}")
    tmp.replace(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the zip's path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default="dist", help="output folder (default dist)")
    args = parser.parse_args(argv)
    out = build(args.dest)
    print(f"wrote {out} (plugin {PLUGIN_NAME} {version()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
