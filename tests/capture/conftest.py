"""The capture file tests (`pcap_loop`) run on both pcap record loops: the compiled one, and the
pure-Python reference it must equal (skipped where the extension was not built)."""

from __future__ import annotations

import pytest

from voiplog.capture import files


@pytest.fixture(
    params=[
        "python",
        pytest.param(
            "compiled",
            marks=pytest.mark.skipif(files._cpcap is None, reason="compiled extensions not built"),
        ),
    ],
)
def pcap_loop(request, monkeypatch):
    """Which pcap record loop the test's readers run."""
    if request.param == "python":
        monkeypatch.setattr(files, "_cpcap", None)
    return request.param
