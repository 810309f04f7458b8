"""Invariant: any bytes parse as a SIP message or raise SipParseError, never anything else; the stream framer likewise; memory stays bounded."""

from __future__ import annotations

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.sip import SipParseError, looks_like_sip, parse_message, split_stream


def seeds():
    from tests.sip.samples import SAMPLES

    yield from SAMPLES
    yield b"".join(SAMPLES)
    yield b"\r\n\r\n" + SAMPLES[0]
    yield SAMPLES[0].replace(b"\r\n", b"\n")


def test_one(data: bytes) -> None:
    looks_like_sip(data)
    try:
        msg = parse_message(data)
    except SipParseError:
        pass
    else:
        # Everything a record may quote must be readable text.
        for value in (msg.call_id, msg.method, msg.request_uri, msg.reason, msg.cseq_method):
            if value is not None:
                value.encode("utf-8")
        for name, value in msg.headers:
            name.encode("utf-8")
            value.encode("utf-8")
    try:
        messages, consumed = split_stream(data)
    except SipParseError:
        return
    if not 0 <= consumed <= len(data) or sum(map(len, messages)) > consumed:
        raise AssertionError(f"split_stream consumed {consumed} of {len(data)} bytes")


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
