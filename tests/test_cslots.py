"""The compiled parsers make their frozen dataclasses from C (`voiplog/_cslots.pxd`):
the instances are those the classes' `__init__` would make."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import pytest

from voiplog.packet import hep
from voiplog.sip import _message, _sdp

_MESSAGE = (
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 129\r\n\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _compiled(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.skip("compiled extensions not built")


def _same_instance(made, expected) -> None:
    """Same class, every slot set to an equal value, frozen like the reference's."""
    assert type(made) is type(expected)
    for field in dataclasses.fields(expected):
        assert getattr(made, field.name) == getattr(expected, field.name), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(made)[0].name, None)
    try:
        expected_hash = hash(expected)
    except TypeError:  # a field holds a dict
        return
    assert hash(made) == expected_hash


def test_sip_message_and_name_addr():
    made = _compiled("voiplog.sip._cmessage").fast_path(_MESSAGE)
    expected = _message.parse_message(_MESSAGE)
    assert made is not None
    _same_instance(made, expected)
    _same_instance(made.from_, expected.from_)
    _same_instance(made.to, expected.to)


def test_sdp_records():
    body = _MESSAGE.split(b"\r\n\r\n", 1)[1]
    made = _compiled("voiplog.sip._csdp").fast_path(body)
    expected = _sdp.parse_sdp(body)
    _same_instance(made, expected)
    _same_instance(made.origin, expected.origin)
    _same_instance(made.media[0], expected.media[0])


def test_hep_message():
    packet = hep.encode_hep3(
        hep.HepMessage(
            3,
            17,
            b"\xc0\x00\x02\x01",
            5060,
            b"\xc0\x00\x02\x04",
            5060,
            1_700_000_000_123_456,
            hep.HEP_SIP,
            _MESSAGE,
            7,
            b"key",
            "corr",
            0,
        )
    )
    made = _compiled("voiplog.packet._chep").fast_path(packet)
    _same_instance(made, hep._decode_v3(packet))


def test_no_reference_is_leaked():
    module = _compiled("voiplog.sip._cmessage")
    value = module.fast_path(_MESSAGE).from_.tag
    before = sys.getrefcount(value)
    kept = [module.fast_path(_MESSAGE) for _ in range(100)]
    del kept
    assert sys.getrefcount(value) == before
