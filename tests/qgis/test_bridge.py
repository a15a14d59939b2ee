"""The bridge: error mapping, progress and cancel, install instructions, load-time choices."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from xr_unmixsr.errors import ParameterError


@pytest.fixture
def bridge(qgis_app: Any) -> Any:
    from qgis_plugin import bridge

    return bridge


def test_core_errors_keep_the_message(bridge: Any) -> None:
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"^n_endmembers=1 is out of range$"):
        with bridge.core_errors():
            raise ParameterError("n_endmembers=1 is out of range")
    with pytest.raises(QgsProcessingException, match="cancelled by the user"):
        with bridge.core_errors():
            raise bridge.Cancelled
    with pytest.raises(RuntimeError, match="a bug"):  # not a core error: the traceback shows
        with bridge.core_errors():
            raise RuntimeError("a bug")


def test_reporter_sets_progress_then_cancels(bridge: Any) -> None:
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    report = bridge.reporter(feedback)
    report(1, 4)
    assert feedback.progress() == 25.0
    feedback.cancel()
    with pytest.raises(bridge.Cancelled):
        report(2, 4)


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux", "/usr/bin/python3 -m pip install --user"),
        ("win32", "OSGeo4W Shell"),
        ("darwin", "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install"),
    ],
)
def test_install_message_per_platform(
    bridge: Any, monkeypatch: pytest.MonkeyPatch, platform: str, expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    message = bridge.install_message(ImportError("No module named 'torch'"))
    assert expected in message and "No module named 'torch'" in message
    assert "install" in message and "torch" in message and "restart QGIS" in message


def test_core_value(bridge: Any) -> None:
    assert bridge.core_value("models.available_models", [])[0] == "bicubic"
    assert bridge.core_value("unmixing.scene.METHODS", []) == ["vca-fcls", "autoencoder", "smile"]
    assert bridge.core_value("no_such_module.NAME", ["fallback"]) == ["fallback"]
