"""Make docs/img/qgis_upscale_dialog.png: the Processing dialog of ``unmixsr:upscale``.

Run under a virtual X server, from the repository root, in the QGIS environment::

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv-qgis/bin/python docs/img/qgis_screenshot.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENE = REPO.parent / "shared/data/enmap_potsdam/enmap_potsdam_mosaic_128x64x224.tif"
OUT = Path(__file__).resolve().with_name("qgis_upscale_dialog.png")


def main() -> None:
    """Open the dialog with the EnMAP scene loaded as a layer, grab it, save it as PNG."""
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    app = QgsApplication([], True)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    sys.path[:0] = ["/usr/share/qgis/python/plugins", str(REPO)]
    from processing.core.Processing import Processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    Processing.initialize()
    from qgis_plugin.provider import UnmixSRProvider

    provider = UnmixSRProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    layer = QgsRasterLayer(str(SCENE), "enmap_potsdam_mosaic_128x64x224")
    QgsProject.instance().addMapLayer(layer)
    alg = QgsApplication.processingRegistry().createAlgorithmById("unmixsr:upscale")
    dialog = AlgorithmDialog(alg)
    dialog.resize(1100, 720)
    dialog.show()
    for _ in range(20):
        app.processEvents()
    dialog.grab().save(str(OUT))
    print(f"wrote {OUT}")
    dialog.close()
    QgsProject.instance().removeAllMapLayers()
    del layer
    app.exitQgis()


if __name__ == "__main__":
    main()
