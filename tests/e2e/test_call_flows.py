"""End to end: PRACK, UPDATE, early media, hold, REFER, forking and B2BUA hints.

Each crafted flow goes through `voiplog replay`; the record's timing, flags, media
and flow details are compared exactly.
"""

from __future__ import annotations

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.cdr import format_ts

CONTRACT_KEYS = [
    "uid", "kind", "call_id", "caller", "callee", "caller_uri", "callee_uri", "request_uri",
    "caller_ip", "caller_port", "callee_ip", "callee_port", "transport", "subscriber_ip",
    "direction", "started_at", "ringing_at", "answered_at", "ended_at", "duration_s", "setup_ms",
    "disposition", "final_status", "ended_by", "user_agent", "media", "flags", "subscriber",
    "remote", "version",
]  # fmt: skip
# Written last on every call record: the session it is a leg of.
SESSION_KEYS = ["session_uid", "session_link"]


def streams(rec: dict) -> list[tuple]:
    """(source port, destination port, SSRC, packets, lost, first, last) of each stream."""
    return [
        (
            m["src_port"],
            m["dst_port"],
            m["ssrc"],
            m["packets"],
            m["lost"],
            m["first_at"],
            m["last_at"],
        )
        for m in rec["media"]
    ]


def timing(rec: dict) -> tuple:
    keys = ("ringing_at", "answered_at", "ended_at", "duration_s", "setup_ms", "disposition")
    return tuple(rec[k] for k in (*keys, "final_status", "ended_by"))


def test_prack_and_183_early_media(replayer):
    d = make_dialog(20)
    d.invite(T0, extra=["Supported: 100rel"])
    d.response(T0 + 10_000, 100)
    d.response(T0 + 100_000, 183, sdp=d._sdp(d.callee), extra=["Require: 100rel", "RSeq: 1"])
    d.request(T0 + 110_000, "PRACK", cseq=2, extra=["RAck: 1 1 INVITE"])
    d.response(T0 + 120_000, 200, method="PRACK", cseq=2)
    d.rtp(T0 + 200_000, 50, from_caller=False, ssrc=0xE1)  # ringback from the 183's SDP
    d.response(T0 + 1_500_000, 200, sdp=d._sdp(d.callee))
    d.ack(T0 + 1_510_000)
    d.rtp(T0 + 1_600_000, 50, from_caller=True, ssrc=0xE2)
    d.rtp(T0 + 1_600_000, 50, from_caller=False, ssrc=0xE1, seq0=1050)
    d.cseq = 2
    d.bye(T0 + 3_000_000)
    (rec,) = replayer.records(sorted_frames(d))
    assert list(rec) == CONTRACT_KEYS + SESSION_KEYS  # no flow details to add
    assert timing(rec) == (
        format_ts(T0 + 100_000),
        format_ts(T0 + 1_500_000),
        format_ts(T0 + 3_000_000),
        1.5,
        100,
        "answered",
        200,
        "caller",
    )
    assert rec["flags"] == ["early_media"]
    assert streams(rec) == [
        (50040, 40040, 0xE1, 100, 0, format_ts(T0 + 200_000), format_ts(T0 + 2_580_000)),
        (40040, 50040, 0xE2, 50, 0, format_ts(T0 + 1_600_000), format_ts(T0 + 2_580_000)),
    ]


def test_update_moves_the_media(replayer):
    d = make_dialog(21)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)
    d.rtp(T0 + 1_100_000, 50, from_caller=True, ssrc=0xA1)
    # The callee moves its media with an UPDATE; the caller answers in the 200.
    d.request(T0 + 2_200_000, "UPDATE", from_caller=False, cseq=1, sdp=d._sdp(d.callee, port=51000))
    d.response(T0 + 2_210_000, 200, method="UPDATE", cseq=1, to_caller=False, sdp=d._sdp(d.caller))
    d.callee.media_port = 51000
    d.rtp(T0 + 2_300_000, 50, from_caller=True, ssrc=0xA1, seq0=1050)
    d.rtp(T0 + 2_300_000, 50, from_caller=False, ssrc=0xB1)
    d.request(T0 + 3_400_000, "BYE", from_caller=False, cseq=2)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == []
    assert timing(rec)[2:] == (format_ts(T0 + 3_400_000), 2.4, 50, "answered", 200, "callee")
    first, last = T0 + 1_100_000, T0 + 1_100_000 + 49 * 20_000
    moved_first, moved_last = T0 + 2_300_000, T0 + 2_300_000 + 49 * 20_000
    assert streams(rec) == [
        (40042, 50042, 0xA1, 50, 0, format_ts(first), format_ts(last)),
        (40042, 51000, 0xA1, 50, 0, format_ts(moved_first), format_ts(moved_last)),
        (51000, 40042, 0xB1, 50, 0, format_ts(moved_first), format_ts(moved_last)),
    ]


def _answered(d) -> None:
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)


def test_hold_and_resume_by_reinvite(replayer):
    d = make_dialog(22)
    _answered(d)
    d.request(T0 + 5_000_000, "INVITE", cseq=2, sdp=d._sdp(d.caller, direction="sendonly"))
    d.response(T0 + 5_050_000, 200, cseq=2, sdp=d._sdp(d.callee, direction="recvonly"))
    d.ack(T0 + 5_060_000, cseq=2)
    d.request(T0 + 5_500_000, "INVITE", cseq=2, sdp=d._sdp(d.caller, direction="sendonly"))
    d.request(T0 + 15_000_000, "INVITE", cseq=3, sdp=d._sdp(d.caller))
    d.response(T0 + 15_050_000, 200, cseq=3, sdp=d._sdp(d.callee))
    d.ack(T0 + 15_060_000, cseq=3)
    # The callee then holds with the RFC 2543 form, and the call ends on hold.
    d.request(
        T0 + 17_000_000,
        "INVITE",
        from_caller=False,
        cseq=1,
        sdp=d._sdp(d.callee, address="0.0.0.0"),
    )
    d.response(T0 + 17_050_000, 200, cseq=1, to_caller=False, sdp=d._sdp(d.caller))
    d.request(T0 + 20_000_000, "BYE", cseq=4)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == ["hold", "reinvite"]  # the re-sent hold offer changes nothing
    assert rec["holds"] == [
        {
            "by": "caller",
            "held_at": format_ts(T0 + 5_000_000),
            "resumed_at": format_ts(T0 + 15_000_000),
        },
        {"by": "callee", "held_at": format_ts(T0 + 17_000_000), "resumed_at": None},
    ]
    assert timing(rec)[1:] == (
        format_ts(T0 + 1_000_000),
        format_ts(T0 + 20_000_000),
        19.0,
        50,
        "answered",
        200,
        "caller",
    )


def test_hold_with_inactive_media_during_rtp(replayer):
    d = make_dialog(23)
    _answered(d)
    d.rtp(T0 + 1_100_000, 100, from_caller=True, ssrc=0xC1)
    d.rtp(T0 + 1_100_000, 100, from_caller=False, ssrc=0xC2)
    d.request(T0 + 3_200_000, "INVITE", cseq=2, sdp=d._sdp(d.caller, direction="inactive"))
    d.response(T0 + 3_250_000, 200, cseq=2, sdp=d._sdp(d.callee, direction="inactive"))
    d.ack(T0 + 3_260_000, cseq=2)
    d.request(T0 + 8_000_000, "INVITE", cseq=3, sdp=d._sdp(d.caller))
    d.response(T0 + 8_050_000, 200, cseq=3, sdp=d._sdp(d.callee))
    d.ack(T0 + 8_060_000, cseq=3)
    d.rtp(T0 + 8_100_000, 50, from_caller=True, ssrc=0xC1, seq0=1100)
    d.rtp(T0 + 8_100_000, 50, from_caller=False, ssrc=0xC2, seq0=1100)
    d.request(T0 + 9_500_000, "BYE", cseq=4)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == ["hold", "reinvite"]
    # Only the caller's offer counts as a hold: the callee's inactive answer is not one.
    assert rec["holds"] == [
        {
            "by": "caller",
            "held_at": format_ts(T0 + 3_200_000),
            "resumed_at": format_ts(T0 + 8_000_000),
        }
    ]
    assert [(s[2], s[3], s[4]) for s in streams(rec)] == [(0xC1, 150, 0), (0xC2, 150, 0)]


def test_refer_transfer_accepted(replayer):
    d = make_dialog(24)
    _answered(d)
    d.request(
        T0 + 4_000_000,
        "REFER",
        from_caller=False,
        cseq=1,
        extra=["Refer-To: <sip:3001@192.0.2.60>", "Referred-By: <sip:2024@192.0.2.50>"],
    )
    d.response(T0 + 4_010_000, 202, method="REFER", cseq=1, to_caller=False)
    d.request(
        T0 + 4_020_000, "NOTIFY", cseq=2, extra=["Event: refer", "Subscription-State: active"]
    )
    d.response(T0 + 4_030_000, 200, method="NOTIFY", cseq=2)
    d.request(T0 + 6_000_000, "BYE", from_caller=False, cseq=2)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == ["transferred"]
    assert list(rec)[len(CONTRACT_KEYS) :] == [
        "referred_to",
        "referred_by",
        "transfer",
        *SESSION_KEYS,
    ]
    assert rec["referred_to"] == "sip:3001@192.0.2.60"
    assert rec["referred_by"] == "sip:2024@192.0.2.50"
    assert rec["transfer"] == {"by": "callee", "status": 202}
    assert timing(rec)[2:] == (format_ts(T0 + 6_000_000), 5.0, 50, "answered", 200, "callee")


def test_refer_declined_is_not_a_transfer(replayer):
    d = make_dialog(25)
    _answered(d)
    replaces = "<sip:3002@192.0.2.61?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>"
    d.request(T0 + 4_000_000, "REFER", cseq=2, extra=[f"Refer-To: {replaces}"])
    d.response(T0 + 4_010_000, 603, method="REFER", cseq=2)
    d.request(T0 + 6_000_000, "BYE", cseq=3)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == []
    assert rec["referred_to"] == replaces[1:-1]
    assert rec["referred_by"] == "sip:1025@10.1.0.10"  # the REFER's From: no Referred-By
    assert rec["transfer"] == {"by": "caller", "status": 603}


def test_forking_with_two_answers_keeps_the_first(replayer):
    d = make_dialog(26)
    d.invite(T0)
    d.response(T0 + 50_000, 180, to_tag="forkA")
    d.response(T0 + 60_000, 180, to_tag="forkB")
    d.response(T0 + 2_000_000, 200, to_tag="forkA", sdp=d._sdp(d.callee))
    d.response(T0 + 2_100_000, 200, to_tag="forkB", sdp=d._sdp(d.callee, port=52000))
    d.callee.tag = "forkA"
    d.ack(T0 + 2_010_000)
    d.callee.tag = "forkB"
    d.ack(T0 + 2_110_000)
    d.request(T0 + 2_120_000, "BYE", cseq=2)  # releases the second fork
    d.response(T0 + 2_130_000, 200, method="BYE", cseq=2, to_tag="forkB")
    d.callee.tag = "forkA"
    d.rtp(T0 + 2_200_000, 100, from_caller=True, ssrc=0xD1)
    d.rtp(T0 + 2_200_000, 100, from_caller=False, ssrc=0xD2)
    d.request(T0 + 10_000_000, "BYE", cseq=3)
    d.response(T0 + 10_010_000, 200, method="BYE", cseq=3)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["flags"] == ["forked"]
    assert timing(rec) == (
        format_ts(T0 + 50_000),
        format_ts(T0 + 2_000_000),
        format_ts(T0 + 10_000_000),
        8.0,
        50,
        "answered",
        200,
        "caller",
    )
    assert rec["other_answers"] == [
        {"to_tag": "forkB", "status": 200, "at": format_ts(T0 + 2_100_000)}
    ]
    assert [(s[0], s[1], s[3]) for s in streams(rec)] == [(40052, 50052, 100), (50052, 40052, 100)]


def test_correlation_hints_tie_two_b2bua_legs(replayer):
    icid = "AyretyU0dm+6O2IrT5tAFrbHLso="
    charging = f'P-Charging-Vector: icid-value="{icid}";icid-generated-at=192.0.2.1'
    leg_a, leg_b = make_dialog(27), make_dialog(28, caller_ip="192.0.2.1")
    leg_a.invite(
        T0,
        extra=[
            charging,
            "Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000",
        ],
    )
    leg_b.invite(
        T0 + 20_000,
        extra=[
            f"X-CID: {leg_a.call_id}",
            charging,
            "Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000",
        ],
    )
    leg_b.response(T0 + 50_000, 180)
    session_b = (
        "Session-ID: 47755a9de7794ba387653f2099600ef2;remote=ab30317f1a784dc48ff824d0d3715d86"
    )
    leg_b.answer(T0 + 1_000_000, extra=[session_b])
    leg_a.answer(T0 + 1_010_000, extra=[session_b])
    leg_b.request(T0 + 3_000_000, "BYE", cseq=2)
    leg_a.request(T0 + 3_010_000, "BYE", cseq=2)
    records = replayer.records(sorted_frames(leg_a, leg_b))
    by_call = {r["call_id"]: r for r in records}
    pair = {
        "session_id": "ab30317f1a784dc48ff824d0d3715d86",
        "session_id_remote": "47755a9de7794ba387653f2099600ef2",
    }
    assert by_call[leg_a.call_id]["correlation"] == {"x_cid": None, "icid": icid, **pair}
    assert by_call[leg_b.call_id]["correlation"] == {"x_cid": leg_a.call_id, "icid": icid, **pair}
    assert list(by_call[leg_b.call_id])[-3:] == ["correlation", *SESSION_KEYS]
    # Leg B's X-CID names leg A: one session, named after leg A.
    assert by_call[leg_b.call_id]["session_uid"] == by_call[leg_a.call_id]["uid"]
    assert by_call[leg_a.call_id]["session_uid"] == by_call[leg_a.call_id]["uid"]
    assert {r["session_link"] for r in records} == {"x-cid"}
