"""``/weights`` offers every format the engine writes, plus ONNX (built by the API)."""

from __future__ import annotations

from api.routes import jobs
from engine import export


def test_weights_formats_are_the_engines_and_onnx():
    assert (*export.FORMATS, "onnx") == jobs.FORMATS
