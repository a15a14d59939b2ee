"""The plugin object and the provider: registration, help texts, loading without the core."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh Python where importing torch or xr_unmixsr fails, as in a QGIS without them.
_WITHOUT_CORE = """
import json, sys
sys.modules["torch"] = None
sys.modules["xr_unmixsr"] = None
sys.path[:0] = ["/usr/share/qgis/python/plugins", {repo!r}]
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.setPrefixPath("/usr", True)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
import qgis_plugin
plugin = qgis_plugin.classFactory(None)
plugin.initProcessing()
registry = QgsApplication.processingRegistry()
out = {{"algorithms": sorted(a.id() for a in registry.providerById("unmixsr").algorithms())}}
try:
    processing.run("unmixsr:upscale", {{"INPUT": {enmap!r}, "SCALE": 2, "OUTPUT": {out!r}}})
except QgsProcessingException as exc:
    out["error"] = str(exc)
plugin.unload()
out["unloaded"] = registry.providerById("unmixsr") is None
print(json.dumps(out))
"""


def test_plugin_loads_and_explains_without_the_core(
    qgis_app: Any, enmap_path: Path, tmp_path: Path
) -> None:
    import os

    script = _WITHOUT_CORE.format(
        repo=str(REPO), enmap=str(enmap_path), out=str(tmp_path / "o.tif")
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["algorithms"] == ["unmixsr:train", "unmixsr:unmix", "unmixsr:upscale"]
    assert "needs the Python packages xr_unmixsr and torch" in result["error"]
    assert "pip install" in result["error"]
    assert result["unloaded"] is True
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("alg_id", ["unmixsr:upscale", "unmixsr:unmix", "unmixsr:train"])
def test_every_parameter_has_help(qgis_app: Any, alg_id: str) -> None:
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    assert alg is not None and alg.displayName()
    text = alg.shortHelpString()
    assert len(text) > 200
    params = alg.parameterDefinitions()
    assert {"INPUT", "OUTPUT"} <= {p.name() for p in params}
    for p in params:
        assert len(p.help()) > 5, p.name()
        assert f"<code>{p.name()}</code>): {p.help()}" in text
    for o in alg.outputDefinitions():
        assert f"<code>{o.name()}</code>" in text


def test_parameters_of_the_issue(qgis_app: Any) -> None:
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    names = {
        alg: {p.name() for p in registry.algorithmById(f"unmixsr:{alg}").parameterDefinitions()}
        for alg in ("upscale", "unmix", "train")
    }
    assert {"INPUT", "SCALE", "MODEL", "MODEL_FILE", "TILE", "BATCH_SIZE", "DEVICE", "OUTPUT"} <= (
        names["upscale"]
    )
    assert {"INPUT", "N_ENDMEMBERS", "METHOD", "SCALE", "TYPICAL", "ENDMEMBERS", "OUTPUT"} <= names[
        "unmix"
    ]
    assert {"INPUT", "SCALE", "EPOCHS", "STEPS_PER_EPOCH", "ARCHITECTURE", "OUTPUT"} <= (
        names["train"]
    )
    unmix = registry.algorithmById("unmixsr:unmix")
    assert {o.name() for o in unmix.outputDefinitions()} == {
        "OUTPUT",
        "OUTPUT_RMSE",
        "OUTPUT_ENDMEMBERS",
    }
    assert unmix.parameterDefinition("METHOD").options() == ["vca-fcls", "autoencoder", "smile"]
