"""Building the record of a SIP call from what its tracker knew of it.

The tracker (`voiplog.calls`) follows a call's INVITE dialog and keeps plain
data on it; this module decides what that data is written as: the disposition,
when the call ended and who ended it, its flags, its RTP streams in a fixed
order, and the keys beyond the contract that only some calls have. It reads
the call through `TrackedCall`, so that records depend on no tracking code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from voiplog.cdr.disposition import Disposition, EndedBy, EndReason, RecordKind, judge
from voiplog.cdr.record import CallRecord, MediaStream, format_ts, make_uid
from voiplog.sip import uri_user

_US = 1_000_000

# Which end of a call (or a REGISTER, or a media session) is the POP's
# subscriber: (caller_ip, callee_ip) -> (subscriber_ip, direction, subscriber
# object). The one definition every record builder takes.
SubscriberLookup = Callable[[str, str], tuple[str | None, str | None, dict | None]]

# The correlation hints a record may carry, in the order they are written.
CORRELATION_KEYS = ("x_cid", "icid", "session_id", "session_id_remote")


def no_subscriber_lookup(caller_ip: str, callee_ip: str) -> tuple[None, None, None]:
    return None, None, None


class TrackedCall(Protocol):
    """What a call record is built from (`voiplog.calls` keeps it per call)."""

    call_id: str
    started_us: int
    ringing_us: int | None
    answered_us: int | None
    final_us: int | None
    final_status: int | None
    cancel_us: int | None
    bye_us: int | None
    ended_by: str | None
    flags: AbstractSet[str]
    flows: Iterable[Any]  # each with `streams`: RtpStream by SSRC
    transport: str
    caller_ip: str
    caller_port: int
    callee_ip: str
    callee_port: int
    from_uri: str | None
    to_uri: str | None
    request_uri: str | None
    user_agent: str | None
    other_answers: Sequence[tuple[str, int, int]]
    holds: Sequence[Any]  # each with `by`, `held_us`, `resumed_us`
    refer: Any  # None, or with `by`, `referred_to`, `referred_by`, `status`
    early_sdp: bool
    correlation: dict[str, str] | None
    session_uid: str | None  # the B2BUA session it is a leg of (None: its own uid)
    session_link: str | None  # the evidence that linked it to another leg
    gaps: Sequence[tuple[int, int]]  # (start, end) of the restarts it lived through

    def last_activity_us(self) -> int: ...


def build_call_record(
    call: TrackedCall,
    reason: EndReason | None,
    lookup_subscriber: SubscriberLookup,
    uid: str | None = None,
) -> CallRecord:
    """The record of `call`, closed early for `reason` (None: its end is known);
    `uid` is its `call_uid` when already known."""
    flags = set(call.flags)
    disposition = judge(call.final_status, call.cancel_us is not None)
    ended_by = EndedBy(call.ended_by) if call.ended_by is not None else None
    if disposition is Disposition.ANSWERED:
        if call.bye_us is not None:
            ended_us = call.bye_us
        else:
            ended_us = call.last_activity_us()
            flags.add("no_bye")
    elif disposition is Disposition.CANCELLED and call.cancel_us is not None:
        ended_us = call.cancel_us
        ended_by = EndedBy.CALLER
    elif call.final_us is not None:
        ended_us = call.final_us
    elif call.bye_us is not None:
        ended_us = call.bye_us
    else:
        ended_us = call.last_activity_us()
    if reason is not None:
        flags.add(reason.value)
        if reason is EndReason.TIMEOUT or reason is EndReason.SHUTDOWN:
            ended_by = EndedBy(reason.value)
    answered_us = call.answered_us
    duration = round((ended_us - answered_us) / _US, 6) if answered_us is not None else 0.0
    first_reply = call.ringing_us if call.ringing_us is not None else call.final_us
    setup_ms = (first_reply - call.started_us + 500) // 1000 if first_reply is not None else None
    media = _media(call)
    directions = {(m.src_ip, m.src_port) for m in media}
    if media and len(directions) == 1:
        flags.add("one_way_media")
    answered_at = format_ts(answered_us)
    if call.early_sdp and media and (answered_at is None or media[0].first_at < answered_at):
        flags.add("early_media")  # RTP flowed before the answer, on a 1xx's SDP
    subscriber_ip, direction, subscriber = lookup_subscriber(call.caller_ip, call.callee_ip)
    if uid is None:
        uid = call_uid(call)
    extra = _flow_details(call)
    # Every call is a session, of one leg unless linked to the other legs of a B2BUA.
    extra["session_uid"] = call.session_uid or uid
    extra["session_link"] = call.session_link
    return CallRecord(
        uid=uid,
        kind=RecordKind.SIP,
        call_id=call.call_id,
        caller=uri_user(call.from_uri) if call.from_uri else None,
        callee=uri_user(call.to_uri) if call.to_uri else None,
        caller_uri=call.from_uri,
        callee_uri=call.to_uri,
        request_uri=call.request_uri,
        caller_ip=call.caller_ip,
        caller_port=call.caller_port,
        callee_ip=call.callee_ip,
        callee_port=call.callee_port,
        transport=call.transport,
        subscriber_ip=subscriber_ip,
        direction=direction,
        started_at=format_ts(call.started_us),
        ringing_at=format_ts(call.ringing_us),
        answered_at=answered_at,
        ended_at=format_ts(ended_us),
        duration_s=duration,
        setup_ms=setup_ms,
        disposition=disposition,
        final_status=call.final_status,
        ended_by=ended_by,
        user_agent=call.user_agent,
        media=media,
        flags=tuple(sorted(flags)),
        subscriber=subscriber,
        extra=extra,
    )


def call_uid(call: TrackedCall) -> str:
    """The uid of a call's record: known from its first INVITE on."""
    return make_uid("sip", call.call_id, call.started_us, call.caller_ip, call.caller_port)


def _flow_details(call: TrackedCall) -> dict:
    """Keys beyond the contract, present only when the call had that flow."""
    extra: dict = {}
    if call.other_answers:
        extra["other_answers"] = [
            {"to_tag": tag, "status": status, "at": format_ts(at)}
            for tag, status, at in call.other_answers
        ]
    if call.holds:
        extra["holds"] = [
            {
                "by": hold.by.value,
                "held_at": format_ts(hold.held_us),
                "resumed_at": format_ts(hold.resumed_us),
            }
            for hold in call.holds
        ]
    refer = call.refer
    if refer is not None:
        extra["referred_to"] = refer.referred_to
        extra["referred_by"] = refer.referred_by
        extra["transfer"] = {"by": refer.by.value, "status": refer.status}
    if call.correlation:
        extra["correlation"] = {key: call.correlation.get(key) for key in CORRELATION_KEYS}
    if call.gaps:
        # The daemon was restarted during the call: its packets then were not seen.
        extra["restart_gaps"] = [
            {"start": format_ts(start), "end": format_ts(end)} for start, end in call.gaps
        ]
    return extra


def _media(call: TrackedCall) -> tuple[MediaStream, ...]:
    streams = []
    for flow in call.flows:
        for stream in flow.streams.values():
            s = stream.summary()
            streams.append(MediaStream.from_summary(s))
    streams.sort(key=lambda m: (m.first_at, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.ssrc))
    return tuple(streams)
