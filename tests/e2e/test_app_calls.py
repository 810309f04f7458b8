"""App calls end to end: crafted captures of each app through `voiplog replay` and libndpi.

The captures follow each app's published wire format (tests/appcraft.py); the
expectations are what libndpi 4.2 (Debian 12) can name. What 4.2 cannot name
(LINE, Snapchat) is pinned too, so that a newer nDPI adapter
shows up here as a change.
"""

from __future__ import annotations

import pytest

from tests import appcraft
from voiplog.ndpi import NdpiUnavailable, load

SUBSCRIBERS = """
pop = "ams1"
[[subscriber_networks]]
cidr = "100.64.0.0/10"
[[subscriber_networks]]
cidr = "10.0.0.0/8"
[[subscriber_networks]]
cidr = "2001:db8::/32"
"""


@pytest.fixture(scope="module")
def ndpi_release():
    try:
        with load() as classifier:
            return classifier.name
    except NdpiUnavailable as exc:
        pytest.skip(f"libndpi: {exc}")


# Apps that libndpi 4.2 names from their call traffic, or from the TLS
# connection to the same server just before (Discord's voice gateway).
NAMED = (
    "whatsapp",
    "telegram",
    "signal",
    "imo",
    "viber",
    "messenger",
    "zoom",
    "discord",
    "teams",
    "google_meet",
    "kakaotalk",
)
VARIANTS = {
    "relayed": {},
    "path_switch": {"p2p_switch": True},
    "peer_to_peer": {"relay": False},
    "muted": {"muted": True},
}


def _calls(records):
    return [r for r in records if r["transport"] == "udp"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("app", NAMED)
def test_each_app_call_is_one_record_named_by_app(replayer, ndpi_release, app, variant):
    # A call muted throughout is told from an unanswered one by its length.
    duration = 80 if variant == "muted" else 15
    call = appcraft.app_call(app, duration_s=duration, seed=7, **VARIANTS[variant])
    records = _calls(replayer.records(call.frames, config=SUBSCRIBERS))
    assert len(records) == 1, [(r["disposition"], r["app"]) for r in records]
    (record,) = records
    assert record["kind"] == "encrypted" and record["disposition"] == "app_call"
    assert record["app"]["name"] == app, record["app"]
    assert record["subscriber_ip"] == call.subscriber_ip
    assert record["caller_ip"] == call.subscriber_ip and record["direction"] == "outbound"
    assert record["started_at"] <= record["ended_at"]
    # The record spans the call: from its first flow's first packet to the last.
    assert record["duration_s"] >= 14.0
    used = {(f[3], f[4]) for f in call.flows if f[0] == "udp"}
    listed = {(f["dst_ip"], f["dst_port"]) for f in record["app_flows"]}
    assert listed <= used
    assert any(f["media"] for f in record["app_flows"])
    if app == "zoom" and variant != "muted":
        # RTP behind Zoom's own header gets its stream statistics.
        assert len(record["media"]) >= 2 and "rtp" in record["protocols"]
    if record["far_end"] == "relay":
        assert record["callee_ip"] is None
    else:
        peer = [f for f in record["app_flows"] if f["media"] and f["path"] == "peer"]
        assert (record["callee_ip"], record["callee_port"]) in {
            (f["dst_ip"], f["dst_port"]) for f in peer
        }


@pytest.mark.parametrize("app", NAMED)
def test_an_unanswered_call_is_no_record(replayer, ndpi_release, app):
    call = appcraft.missed_call(app, seed=3)
    assert _calls(replayer.records(call.frames, config=SUBSCRIBERS)) == []


@pytest.mark.parametrize("trap", appcraft.TRAPS)
def test_traffic_that_is_not_a_call_makes_no_call_record(replayer, ndpi_release, trap):
    make = {
        "dns": appcraft.dns_burst,
        "wireguard": appcraft.wireguard_tunnel,
        "missed_call": lambda **kw: appcraft.missed_call("whatsapp", **kw),
    }.get(trap) or getattr(appcraft, trap)
    crafted = make(seed=11)
    records = replayer.records(crafted.frames, config=SUBSCRIBERS)
    assert [r["disposition"] for r in records if r["disposition"] != "tls_session"] == []


@pytest.mark.parametrize("app", ["telegram", "whatsapp", "messenger"])
def test_an_ipv6_call_is_named(replayer, ndpi_release, app):
    call = appcraft.app_call(app, duration_s=12, ipv6=True, seed=2)
    (record,) = _calls(replayer.records(call.frames, config=SUBSCRIBERS))
    assert record["app"]["name"] == app
    assert record["subscriber_ip"] == call.subscriber_ip


@pytest.mark.parametrize("app", ["line", "snapchat"])
def test_apps_that_ndpi_4_2_cannot_name_still_leave_a_record(replayer, ndpi_release, app):
    call = appcraft.app_call(app, duration_s=12, seed=5)
    records = _calls(replayer.records(call.frames, config=SUBSCRIBERS))
    assert records, "the call's media must leave a record even unnamed"
    assert all(r["subscriber_ip"] == call.subscriber_ip for r in records)
    if ndpi_release == "ndpi 4.2.0":
        assert {(r["app"] or {}).get("name") for r in records} <= {None, "webrtc"}


def test_a_mix_of_calls_and_traps(replayer, ndpi_release):
    """Many calls of every app and traffic that is no call, interleaved: one record
    per call whose app 4.2 can name, none for the rest."""
    frames, crafted = appcraft.mix(21, calls=24, traps=16, duration_s=(8.0, 14.0))
    records = _calls(replayer.records(frames, config=SUBSCRIBERS))
    calls = [c for c in crafted if c.is_call]
    by_subscriber = {}
    for record in records:
        by_subscriber.setdefault(record["subscriber_ip"], []).append(record)
    found = named = 0
    for call in calls:
        mine = by_subscriber.get(call.subscriber_ip, [])
        found += bool(mine)
        named += any((r["app"] or {}).get("name") == call.app for r in mine)
    trap_ips = {c.subscriber_ip for c in crafted if not c.is_call}
    assert not [r for r in records if r["subscriber_ip"] in trap_ips]
    assert found == len(calls)
    assert named >= 0.75 * len(calls), (named, len(calls))
