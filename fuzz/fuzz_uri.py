"""Invariant: any text parses as a name-addr / URI or raises SipParseError, never anything else; memory stays bounded."""

from __future__ import annotations

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.sip import (
        SipParseError,
        parse_name_addr,
        percent_unescape,
        uri_host,
        uri_port,
        uri_scheme,
        uri_user,
    )


def seeds():
    yield b'"Alice Example" <sip:4989111222@sip.example.net>;tag=8f3a2c1d'
    yield b"<sip:+4930123456@sip.example.net;user=phone>"
    yield b"sip:alice%20x@[2001:db8::1]:5062;transport=tcp"
    yield b"tel:+4930123456;phone-context=example.net"
    yield b"Bob <sips:bob@biloxi.example.com?subject=project>"


def test_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for parse in (parse_name_addr, uri_user, uri_host, uri_port, uri_scheme, percent_unescape):
        try:
            result = parse(text)
        except SipParseError:
            continue
        if isinstance(result, str):
            result.encode("utf-8")  # a record must be writable as JSON text


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
