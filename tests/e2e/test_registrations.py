"""End to end: crafted REGISTER flows through `voiplog replay` give the exact records."""

from __future__ import annotations

from tests.sipcraft import T0, make_dialog, make_registration, sorted_frames
from voiplog.cdr import format_ts, make_uid

REGISTRATION_KEYS = [
    "uid", "kind", "call_id", "aor", "user", "contact_uri", "contact_ip", "contact_port",
    "source_ip", "source_port", "registrar_ip", "registrar_port", "transport", "expires_s",
    "auth_user", "user_agent", "status", "result", "requested_at", "answered_at",
    "subscriber_ip", "direction", "subscriber", "flags", "version",
]  # fmt: skip

NETWORKS = """
pop = "ams1"
[[subscriber_networks]]
cidr = "10.1.0.0/16"
site = "ams1-dslam-4"
"""


def expected(reg, first_cseq: int = 1, **fields) -> dict:
    """The record of `reg`'s chain with the usual values, overridden by `fields`."""
    started = fields.pop("requested_us", T0)
    branch = fields.pop("first_branch", f"z9hG4bKreg{first_cseq}")
    uid = make_uid("registration", reg.call_id, started, first_cseq, branch, reg.ua_ip, reg.ua_port)
    record = {
        "uid": uid,
        "kind": "registration",
        "call_id": reg.call_id,
        "aor": f"sip:{reg.user}@voip.example.net",
        "user": reg.user,
        "contact_uri": f"sip:{reg.user}@{reg.ua_ip}:{reg.ua_port}",
        "contact_ip": reg.ua_ip,
        "contact_port": reg.ua_port,
        "source_ip": reg.ua_ip,
        "source_port": reg.ua_port,
        "registrar_ip": reg.registrar_ip,
        "registrar_port": 5060,
        "transport": "udp",
        "expires_s": 3600,
        "auth_user": None,
        "user_agent": "craft-phone/1.0",
        "status": 200,
        "result": "registered",
        "requested_at": format_ts(started),
        "answered_at": None,
        "subscriber_ip": None,
        "direction": None,
        "subscriber": None,
        "flags": [],
        "version": 1,
    }
    record.update(fields)
    return record


def test_register_with_digest_challenge_is_one_exact_record(replayer):
    reg = make_registration(1)
    reg.register(T0, 1)
    reg.reply(T0 + 5_000, 401, 1)
    reg.register(T0 + 20_000, 2, auth_user="alice")
    reg.reply(T0 + 22_000, 100, 2)
    reg.reply(T0 + 30_000, 200, 2, contacts=[f"{reg.default_contact()};expires=1800"])
    (rec,) = replayer.records(sorted_frames(reg))
    assert list(rec) == [*REGISTRATION_KEYS, "attempts"]
    assert rec == expected(
        reg,
        expires_s=1800,  # the registrar granted less than the 3600 asked for
        auth_user="alice",
        answered_at=format_ts(T0 + 30_000),
        flags=["auth_challenged"],
        attempts=2,
    )


def test_proxy_challenge_and_subscriber_network(replayer):
    reg = make_registration(2)
    reg.register(T0, 7, expires=600)
    reg.reply(T0 + 5_000, 407, 7)
    reg.register(T0 + 20_000, 8, expires=600, auth_user="3002", proxy_auth=True)
    reg.reply(T0 + 30_000, 200, 8, expires=300)  # granted in the Expires header
    (rec,) = replayer.records(sorted_frames(reg), config=NETWORKS)
    assert rec == expected(
        reg,
        first_cseq=7,
        expires_s=300,
        auth_user="3002",
        answered_at=format_ts(T0 + 30_000),
        subscriber_ip="10.1.0.20",
        direction="outbound",
        subscriber={
            "id": None,
            "account": None,
            "access_line": None,
            "pop": "ams1",
            "location": {"site": "ams1-dslam-4"},
        },
        flags=["auth_challenged"],
        attempts=2,
    )


def test_register_refused_after_challenge_fails(replayer):
    reg = make_registration(3)
    reg.register(T0, 1)
    reg.reply(T0 + 5_000, 401, 1)
    reg.register(T0 + 20_000, 2, auth_user="mallory")
    reg.reply(T0 + 30_000, 403, 2)
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        status=403,
        result="failed",
        auth_user="mallory",
        answered_at=format_ts(T0 + 30_000),
        flags=["auth_challenged"],
        attempts=2,
    )


def test_unknown_user_fails_and_unanswered_challenge_stays_challenged(replayer):
    unknown, challenged = make_registration(4), make_registration(5)
    unknown.register(T0, 1)
    unknown.reply(T0 + 10_000, 404, 1)
    challenged.register(T0 + 1_000, 1)
    challenged.reply(T0 + 11_000, 401, 1)
    records = replayer.records(sorted_frames(unknown, challenged))
    assert records == [
        expected(unknown, status=404, result="failed", answered_at=format_ts(T0 + 10_000)),
        expected(
            challenged,
            requested_us=T0 + 1_000,
            status=401,
            result="challenged",
            answered_at=format_ts(T0 + 11_000),
            flags=["end_of_input"],
        ),
    ]


def test_register_without_response_times_out(replayer):
    reg = make_registration(6)
    reg.register(T0, 1)
    reg.register(T0 + 500_000, 1)  # retransmitted
    # Traffic long after the 32 s transaction timeout moves packet time on.
    d = make_dialog(1)
    d.basic_answered(T0 + 60_000_000, rtp=False)
    records = replayer.records(sorted_frames(reg, d))
    assert [r["kind"] for r in records] == ["registration", "sip"]
    assert records[0] == expected(
        reg, status=None, result="no_response", flags=["register_retransmitted"]
    )


def test_deregistration_with_expires_zero(replayer):
    reg = make_registration(7)
    reg.register(T0, 10, expires=0)
    reg.reply(T0 + 8_000, 200, 10)  # no bindings left: no Contact in the answer
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        first_cseq=10,
        expires_s=0,
        result="unregistered",
        answered_at=format_ts(T0 + 8_000),
    )


def test_deregistration_of_every_binding_with_star(replayer):
    reg = make_registration(8)
    reg.register(T0, 3, contacts=["*"], expires=0)
    reg.reply(T0 + 8_000, 200, 3)
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        first_cseq=3,
        contact_uri=None,
        contact_ip=None,
        contact_port=None,
        expires_s=0,
        result="unregistered",
        answered_at=format_ts(T0 + 8_000),
        flags=["wildcard"],
    )


def test_several_contacts_and_refresh_give_a_record_each(replayer):
    reg = make_registration(9)
    first = f"<sip:{reg.user}@10.1.0.20:5069;transport=udp>;expires=120"
    second = f"<sip:{reg.user}@phone.example.net>;q=0.5"
    reg.register(T0, 1, contacts=[first, second], expires=600)
    reg.reply(
        T0 + 10_000,
        200,
        1,
        contacts=[
            f"<sip:{reg.user}@10.1.0.20:5069;transport=udp>;expires=120",
            f"<sip:{reg.user}@phone.example.net>;expires=540",
        ],
    )
    reg.register(T0 + 100_000_000, 2, contacts=[first], expires=600)
    reg.reply(T0 + 100_010_000, 200, 2, contacts=[f"<sip:{reg.user}@10.1.0.20:5069>;expires=90"])
    records = replayer.records(sorted_frames(reg))
    assert records == [
        expected(
            reg,
            contact_uri=f"sip:{reg.user}@10.1.0.20:5069;transport=udp",
            contact_port=5069,
            expires_s=120,
            answered_at=format_ts(T0 + 10_000),
            contacts=[
                {"uri": f"sip:{reg.user}@10.1.0.20:5069;transport=udp", "expires_s": 120},
                {"uri": f"sip:{reg.user}@phone.example.net", "expires_s": 540},
            ],
        ),
        expected(
            reg,
            first_cseq=2,
            requested_us=T0 + 100_000_000,
            contact_uri=f"sip:{reg.user}@10.1.0.20:5069;transport=udp",
            contact_port=5069,
            expires_s=90,  # matched although the registrar dropped the URI parameter
            answered_at=format_ts(T0 + 100_010_000),
        ),
    ]


def test_interval_too_brief_then_accepted_is_one_record(replayer):
    reg = make_registration(10)
    reg.register(T0, 1, expires=30)
    reg.reply(T0 + 5_000, 423, 1, extra=["Min-Expires: 60"])
    reg.register(T0 + 10_000, 2, expires=60)
    reg.reply(T0 + 15_000, 200, 2, contacts=[f"{reg.default_contact()};expires=60"])
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        expires_s=60,
        answered_at=format_ts(T0 + 15_000),
        flags=["interval_too_brief"],
        attempts=2,
    )


def test_password_guessing_with_one_cseq_is_one_chain_of_attempts(replayer):
    """A guesser resends REGISTER with the CSeq unchanged and a new Via branch each
    time: new transactions, not retransmissions. The last one succeeds."""
    reg = make_registration(12)
    reg.user_agent = "friendly-scanner"
    reg.register(T0, 1, branch="z9hG4bK-1")
    reg.reply(T0 + 5_000, 401, 1, branch="z9hG4bK-1")
    for n, password_try in enumerate(range(2, 6)):
        ts = T0 + 10_000 * (n + 1)
        branch = f"z9hG4bK-{password_try}"
        reg.register(ts, 2, auth_user=reg.user, branch=branch)
        reg.reply(ts + 5_000, 401 if password_try < 5 else 200, 2, branch=branch)
    reg.reply(T0 + 46_000, 401, 2, branch="z9hG4bK-4")  # a late copy of an earlier answer
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        first_branch="z9hG4bK-1",
        auth_user=reg.user,
        user_agent="friendly-scanner",
        answered_at=format_ts(T0 + 45_000),
        flags=["auth_challenged"],
        attempts=5,
    )


def test_registrations_are_counted_apart_from_calls(replayer):
    reg = make_registration(11)
    reg.register(T0, 1)
    reg.reply(T0 + 5_000, 200, 1)
    d = make_dialog(2)
    d.basic_answered(T0 + 1_000_000, rtp=False)
    capture = replayer.write(sorted_frames(reg, d))
    records = replayer.run(capture)
    assert sorted(r["kind"] for r in records) == ["registration", "sip"]


def test_ipv6_registration(replayer):
    reg = make_registration(13, ua_ip="2001:db8::20", registrar_ip="2001:db8::1")
    reg.register(T0, 1, contacts=["<sip:3013@[2001:DB8::20]:5073;transport=udp>"])
    reg.reply(T0 + 4_000, 200, 1, contacts=["<sip:3013@[2001:db8::20]:5073>;expires=600"])
    (rec,) = replayer.records(sorted_frames(reg))
    assert rec == expected(
        reg,
        contact_uri="sip:3013@[2001:DB8::20]:5073;transport=udp",
        contact_ip="2001:db8::20",  # compressed, lower case, without brackets
        expires_s=600,
        answered_at=format_ts(T0 + 4_000),
    )
