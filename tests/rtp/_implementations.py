"""Both `RtpStream` implementations, for the tests that must hold for each: the
pure-Python reference and the compiled one (skipped when it was not built)."""

from __future__ import annotations

import importlib

import pytest

from voiplog.rtp._stream import RtpStream as PythonRtpStream

try:
    CompiledRtpStream = importlib.import_module("voiplog.rtp._cstream").RtpStream
except ImportError:
    CompiledRtpStream = None

IMPLEMENTATIONS = [
    pytest.param(PythonRtpStream, id="python"),
    pytest.param(
        CompiledRtpStream,
        id="compiled",
        marks=pytest.mark.skipif(CompiledRtpStream is None, reason="compiled extensions not built"),
    ),
]
