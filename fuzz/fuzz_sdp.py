"""Invariant: any bytes parse as a session description or raise SdpParseError, never anything else; memory stays bounded."""

from __future__ import annotations

import contextlib

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.sip import SdpParseError, parse_sdp


def seeds():
    from tests.sip.samples import SDP_OFFER
    from tests.sipcraft import make_dialog

    yield SDP_OFFER
    d = make_dialog(1)
    yield d._sdp(d.caller)
    d6 = make_dialog(2, caller_ip="2001:db8::1", callee_ip="2001:db8::2")
    yield d6._sdp(d6.caller, "sendonly")
    yield SDP_OFFER + b"a=candidate:1 1 UDP 2130706431 10.0.0.1 8998 typ host\r\n"


def test_one(data: bytes) -> None:
    with contextlib.suppress(SdpParseError):
        parse_sdp(data)


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
