"""Odd header values and odd orders through the tracker: records out, nothing raised.

Invariant: whatever Contact, Expires, Authorization, Refer-To, Session-ID or SDP
direction a parseable message carries, and in whatever order REGISTER, INVITE,
REFER and their answers come, `on_sip`, `expire` and `close_all` return normally
and every chain or call that was opened is written exactly once.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sipcraft import T0, make_dialog, make_registration
from voiplog.calls import CallSettings, CallTracker
from voiplog.errors import ParseError
from voiplog.sip import parse_message

# Header values: printable text without line breaks (those would end the header).
VALUES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=60
)
HEADERS = st.sampled_from(
    [
        "Contact",
        "Expires",
        "Authorization",
        "Proxy-Authorization",
        "Refer-To",
        "Referred-By",
        "Session-ID",
        "P-Charging-Vector",
        "X-CID",
    ]
)


def _step(data, reg, dialog, extra):
    kind = data.draw(
        st.sampled_from(["register", "reply", "invite", "answer", "reinvite", "refer", "bye"])
    )
    cseq = data.draw(st.integers(1, 4))
    status = data.draw(st.sampled_from([100, 180, 183, 200, 202, 401, 403, 407, 423, 486]))
    if kind == "register":
        return reg.register(
            0, cseq, extra=extra, branch=data.draw(st.sampled_from(["a", "b"]))
        ), True
    if kind == "reply":
        return reg.reply(0, status, cseq, extra=extra), False
    if kind == "invite":
        return dialog.invite(0, extra=extra), True
    if kind == "answer":
        return dialog.response(0, status, sdp=dialog._sdp(dialog.callee), extra=extra), False
    if kind == "reinvite":
        direction = data.draw(st.sampled_from(["sendonly", "inactive", "recvonly", "sendrecv"]))
        sdp = dialog._sdp(dialog.caller, direction=direction)
        return dialog.request(0, "INVITE", cseq=cseq, sdp=sdp, extra=extra), True
    if kind == "refer":
        return dialog.request(0, "REFER", cseq=cseq, extra=extra), data.draw(st.booleans())
    return dialog.request(0, "BYE", cseq=cseq, extra=extra), True


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_odd_flows_never_raise_and_write_each_record_once(data):
    tracker = CallTracker(CallSettings(max_open_registrations=2, max_open_calls=2))
    reg, dialog = make_registration(1), make_dialog(1)
    written = []
    ts = T0
    for _ in range(data.draw(st.integers(1, 12))):
        extra = [
            f"{name}: {value}"
            for name, value in data.draw(st.lists(st.tuples(HEADERS, VALUES), max_size=3))
        ]
        payload, upstream = _step(data, reg, dialog, extra)
        try:
            msg = parse_message(payload)
        except ParseError:
            continue  # a value that breaks the message is the parser's business
        ts += data.draw(st.integers(0, 40_000_000))
        src, dst = (reg.ua_ip, reg.registrar_ip) if upstream else (reg.registrar_ip, reg.ua_ip)
        tracker.on_sip(msg, ts, src, 5060, dst, 5060)
        written += tracker.expire(ts)
    written += tracker.close_all()
    assert tracker.open_calls == 0 and tracker.registrations.open_chains == 0
    assert len({r.uid for r in written}) == len(written)
    for record in written:
        record.to_dict()
