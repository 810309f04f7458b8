"""Media sessions, SIP-TLS connections and app calls across a restart.

A classifier fed the first part of the traffic, saved (through JSON, as the
daemon writes it) and restored into a new classifier that is fed the rest, must
write the records one classifier fed everything writes, but for the flag
``restarted`` and the ``restart_gaps`` key.
"""

from __future__ import annotations

import orjson
import pytest

from tests.flows import _craft as c
from tests.flows.test_appcalls import (
    PEER,
    RELAY,
    SUB,
    TELEGRAM_DPI,
    TableClassifier,
    _rtp_payloads,
    media_flow,
)
from voiplog.flows import FlowClassifier, FlowSettings

T0 = 1_700_000_000_000_000
MS = 1000
S = 1_000_000


def rtp_session(feed, start, count, first_seq=0):
    for i in range(first_seq, first_seq + count):
        t = start + i * 20 * MS
        feed(t, SUB, 40000, PEER, 50000, c.rtp(i, i * 160, 0, ssrc=0x11))
        feed(t + 2 * MS, PEER, 50000, SUB, 40000, c.rtp(i, i * 160, 0, ssrc=0x22))


def tls_connection(feed, start, count, first=0):
    if first == 0:
        feed(start, SUB, 50123, PEER, 5061, c.tls_client_hello("sip.example.net"))
    for i in range(max(first, 1), first + count):
        feed(start + i * S, SUB, 50123, PEER, 5061, b"\x17\x03\x03\x00\x10" + bytes(16))


def restarted(make, first_part, second_part, gap=(T0 + 5 * S, T0 + 5 * S + 1)):
    before = make()
    records = first_part(before)
    saved = orjson.loads(orjson.dumps(before.snapshot()))
    after = make()
    assert after.restore(saved, gap) >= 0
    records += second_part(after)
    return records + after.close_all()


def strip_restart(record):
    data = record.to_dict()
    assert "restarted" in data["flags"]
    data["flags"] = [f for f in data["flags"] if f != "restarted"]
    gaps = data.pop("restart_gaps")
    assert gaps and all(g["start"] <= g["end"] for g in gaps)
    return data


def test_an_rtp_session_without_signalling_goes_on_after_a_restart():
    def make():
        return FlowClassifier(FlowSettings())

    whole = make()
    rtp_session(whole.feed_udp, T0, 400)
    (expected,) = whole.close_all()
    (record,) = restarted(
        make,
        lambda f: rtp_session(f.feed_udp, T0, 150) or [],
        lambda f: rtp_session(f.feed_udp, T0, 250, first_seq=150) or [],
    )
    assert strip_restart(record) == expected.to_dict()
    assert record.media[0].packets == 400


def test_an_app_call_switching_path_goes_on_after_a_restart():
    def make():
        apps = TableClassifier({RELAY: TELEGRAM_DPI, PEER: TELEGRAM_DPI}, [RELAY])
        return FlowClassifier(FlowSettings(), apps=apps)

    def first(flows):
        return media_flow(flows, T0, 6, RELAY, 1400)

    def second(flows):
        records = media_flow(flows, T0 + 6 * S, 4, RELAY, 1400)
        return records + media_flow(flows, T0 + 8 * S, 10, PEER, 52000, payload=_rtp_payloads())

    whole = make()
    records = first(whole) + second(whole)
    (expected,) = records + whole.close_all()
    (record,) = restarted(make, first, second)
    assert strip_restart(record) == expected.to_dict()
    assert record.extra["far_end"] == "peer"


def test_a_sip_tls_connection_goes_on_after_a_restart():
    def make():
        return FlowClassifier(FlowSettings())

    whole = make()
    tls_connection(whole.feed_tcp, T0, 20)
    (expected,) = whole.close_all()
    (record,) = restarted(
        make,
        lambda f: tls_connection(f.feed_tcp, T0, 8) or [],
        lambda f: tls_connection(f.feed_tcp, T0, 12, first=8) or [],
    )
    assert strip_restart(record) == expected.to_dict()


def test_a_state_that_does_not_read_changes_nothing():
    flows = FlowClassifier(FlowSettings())
    rtp_session(flows.feed_udp, T0, 50)
    saved = orjson.loads(orjson.dumps(flows.snapshot()))
    del saved["sessions"][0]["streams"]
    fresh = FlowClassifier(FlowSettings())
    with pytest.raises(ValueError, match="do not read"):
        fresh.restore(saved, (T0, T0 + 1))
    assert fresh.snapshot()["sessions"] == []
    saved["format"] = 99
    with pytest.raises(ValueError, match="format"):
        fresh.restore(saved, (T0, T0 + 1))


def test_an_undecided_flow_is_classified_again_after_a_restart():
    # The application classifier's own state cannot be saved: a session it had
    # not decided on starts over, and is still named.
    def make():
        apps = TableClassifier({RELAY: TELEGRAM_DPI}, [RELAY], after=2)
        return FlowClassifier(FlowSettings(), apps=apps)

    def first(flows):
        # Plain RTP (believed on its own) that the classifier has not named yet.
        flows._apps.after = 10_000
        return media_flow(flows, T0, 2, RELAY, 1400, payload=_rtp_payloads())

    def second(flows):
        return media_flow(flows, T0 + 2 * S, 8, RELAY, 1400, payload=_rtp_payloads())

    (record,) = restarted(make, first, second)
    assert record.extra["app"]["name"] == "telegram"
