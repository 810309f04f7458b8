"""App calls in real captures: nDPI 4.2's own test captures (LGPL-3.0).

`scripts/fetch-app-captures` fetches them from Debian's source archive into
VOIPLOG_APP_CAPTURES (default ~/.cache/voiplog/ndpi-4.2-pcaps); without them
these tests skip. They are replayed as a new user would: no POP config, so the
subscriber's end of each flow is found without subscriber networks.

The calls below were counted by reading each capture flow by flow (nDPI's own
results beside it): a call is two-way media between a subscriber socket and a
relay or a peer. Every other capture of the set holds no call, and must leave
no call record: chat, voice messages and file transfers of the same apps,
STUN to an app's servers without media, QUIC, VPNs, games, streaming, DTLS
without an answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from voiplog.cli.main import cli

CAPTURES = Path(
    os.environ.get("VOIPLOG_APP_CAPTURES")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "voiplog"
    / "ndpi-4.2-pcaps"
)
FETCHED = (CAPTURES / ".complete").is_file()
pytestmark = pytest.mark.skipif(
    not FETCHED, reason=f"no app captures in {CAPTURES} (scripts/fetch-app-captures)"
)

# capture -> (the subscriber's address, the app named, the calls in it: the
# subscriber's ports of its media flows, and whether its far end was a peer or
# a relay all the way)
CALLS: dict[str, tuple[str, str, list[tuple[set[int] | None, str]]]] = {
    # Video call: relay, then peer to peer from the same socket.
    "wa_video.pcap": ("192.168.2.12", "whatsapp", [({53688}, "peer")]),
    # Voice call: relay, then peer to peer; the peer sends first.
    "wa_voice.pcap": ("192.168.2.12", "whatsapp", [({56328}, "peer")]),
    # Two calls, 28 s apart, each from its own socket, each relay then peer.
    "whatsapp_login_call.pcap": (
        "192.168.2.4",
        "whatsapp",
        [({51518}, "peer"), ({52794}, "peer")],
    ),
    # Two calls, 28 s apart, peer to peer after ICE over several sockets.
    "stun_signal.pcapng": ("192.168.12.169", "signal", [({43068}, "peer"), ({47767}, "peer")]),
    # Messenger call through a TURN relay (ChannelData).
    "stun_facebook.pcapng": ("192.168.12.169", "messenger", [({38123}, "relay")]),
    # Snapchat's call inside QUIC to its relay on UDP 443.
    "snapchat_call.pcapng": ("192.168.12.169", "snapchat", [({42083}, "relay")]),
    # Consumer Skype's calls are Teams' (see the names in the README).
    "skype-conference-call.pcap": ("192.168.2.20", "teams", [({49282}, "peer")]),
    "teams.pcap": ("192.168.1.6", "teams", [({50016}, "peer")]),
    # Two calls 8 s apart: relays then a LAN peer; then another socket, relayed.
    "telegram.pcap": ("192.168.1.77", "telegram", [({23174}, "peer"), ({28150}, "relay")]),
    # Zoom's multimedia router (UDP 8801) relays the meetings.
    "zoom.pcap": ("192.168.1.117", "zoom", [(None, "relay")]),
    "zoom2.pcap": ("192.168.1.178", "zoom", [({60653, 58117, 57953}, "relay")]),
    # Plain RTP beside the flows nDPI names KakaoTalk_Voice: one call.
    "KakaoTalk_talk.pcap": ("10.24.82.188", "kakaotalk", [({10268, 10269, 11320, 11321}, "peer")]),
}

# Captures whose reason for holding no call is worth writing down (the rest
# of the set is traffic of no call application at all).
NOT_CALLS = {
    "whatsapp_voice_and_message.pcap": "voice messages and chat; STUN to relays, no media",
    "whatsapp_login_chat.pcap": "chat",
    "whatsappfiles.pcap": "file transfers",
    "signal.pcap": "Signal's TLS only",
    "viber.pcap": (
        "two call attempts to Viber's relay (UDP 7985): a 265-byte request every "
        "0.5 s, each acknowledged, for 6-7 s; never media"
    ),
    "hangout.pcap": "STUN from Google's server one way only",
    "KakaoTalk_chat.pcap": "chat",
    "skype.pcap": "Skype over TLS/TCP: sign-in, presence, chat",
    "skype_udp.pcap": "five datagrams",
    "webex.pcap": "Webex over TLS and SIP REGISTERs",
    "teamspeak3.pcap": "13 datagrams one way",
    "dtls.pcap": "a DTLS ClientHello offering SRTP that nobody answered",
}


def replay(name: str) -> list[dict]:
    out = CAPTURES.parent / f"{name}.jsonl"
    result = CliRunner().invoke(
        cli,
        ["replay", str(CAPTURES / name), "--store", "none", "--jsonl", str(out)],
        catch_exceptions=False,
    )
    try:
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in out.read_text().splitlines()]
    finally:
        out.unlink(missing_ok=True)


def app_calls(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("disposition") in ("app_call", "media_session")]


@pytest.fixture(scope="module")
def ndpi() -> None:
    from voiplog.ndpi import load

    try:
        load()
    except Exception as exc:  # the tests say why rather than fail
        pytest.skip(f"libndpi: {exc}")


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_call_is_one_record_named_by_its_app(ndpi, name):
    subscriber, app, calls = CALLS[name]
    records = app_calls(replay(name))
    assert len(records) == len(calls), [r["app_flows"] for r in records]
    for record, (ports, far_end) in zip(
        sorted(records, key=lambda r: r["started_at"]), calls, strict=True
    ):
        assert record["disposition"] == "app_call"
        assert record["app"]["name"] == app
        assert record["caller_ip"] == subscriber
        if ports is not None:
            assert {f["src_port"] for f in record["app_flows"] if f["media"]} == ports
        assert record["far_end"] == far_end
        if far_end == "relay":
            # The far party is not visible behind a relay: no callee address.
            assert record["callee_ip"] is None
        else:
            assert record["callee_ip"] not in (None, subscriber)
        assert record["duration_s"] > 1
        assert all(f["src_ip"] == subscriber for f in record["app_flows"])


def test_captures_of_no_call_leave_no_call_record(ndpi):
    names = sorted(p.name for p in CAPTURES.iterdir() if p.is_file() and p.name not in CALLS)
    names = [n for n in names if not n.startswith((".", "COPYING"))]
    assert set(NOT_CALLS) <= set(names)
    wrong = {}
    for name in names:
        found = app_calls(replay(name))
        if found:
            wrong[name] = [(r["disposition"], (r.get("app") or {}).get("name")) for r in found]
    assert wrong == {}
