"""Open calls and REGISTER chains as plain data, and back: what a restart keeps.

Strategy: everything the call tracker holds is turned into JSON-able values
(str, int, float, bool, None, lists, dicts with str keys): bytes as hex, sets
as sorted lists, enums by value. The media index is saved whole, in its own
order, because which call a new RTP flow goes to depends on that order; flows
are saved with their call and marked when the index still holds them. An RTP
stream is saved slot by slot (`voiplog.rtp.stream_state`), so that its
statistics go on exactly where they stopped. No file is read or written here:
the daemon decides where it goes.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from voiplog.calls._dialog import Dialog, Hold, Offer, Refer, Side, State
from voiplog.calls._media import MediaFlow, _Endpoint
from voiplog.calls._registrations import _Chain, _Contact
from voiplog.calls._registrations import _State as _ChainState
from voiplog.rtp import stream_from_state, stream_state

# Bumped whenever what is saved changes meaning: a saved state of another
# format is refused, never half-read.
FORMAT = 1

# Dialog fields saved with a conversion of their own, or not at all.
_SPECIAL = frozenset(
    {
        "state",
        "invite_branches",
        "to_tags",
        "branch_tags",
        "reinvites",
        "flags",
        "endpoints",
        "flows",
        "offered_not_rtp",
        "last_sdp",
        "heap_seq",
        "answer_hop",
        "answer_aliases",
        "other_answers",
        "holds",
        "pending_offer",
        "refer",
        "gaps",
    }
)
_PLAIN = tuple(f.name for f in fields(Dialog) if f.name not in _SPECIAL)
# Fields added since FORMAT 1 was first written: a state saved before them
# takes their defaults. A call saved with a failure as its final answer had it
# from the caller's hop (the only one noted then).
_LATER = frozenset(
    {
        "origin_ip",
        "origin_port",
        "origin_vias",
        "final_reached_caller",
        "ringing_reached_caller",
        "hep_correlation",
        "session_uid",
        "session_link",
    }
)


def _rtpmap_out(rtpmap: dict | None) -> list | None:
    if rtpmap is None:
        return None
    return [[pt, list(value)] for pt, value in rtpmap.items()]


def _rtpmap_in(data: list | None) -> dict | None:
    if data is None:
        return None
    return {pt: tuple(value) for pt, value in data}


def _key_out(key: tuple[bytes, int]) -> list:
    return [key[0].hex(), key[1]]


def _key_in(data: list) -> tuple[bytes, int]:
    return (bytes.fromhex(data[0]), data[1])


def dialog_data(call: Dialog, indexed: dict[bytes, MediaFlow]) -> dict:
    """`call` as plain data; `indexed` is the media index's flows."""
    data: dict[str, Any] = {name: getattr(call, name) for name in _PLAIN}
    offer = call.pending_offer
    refer = call.refer
    data.update(
        state=call.state.value,
        invite_branches=list(call.invite_branches),
        to_tags=sorted(call.to_tags),
        branch_tags=[list(branch) for branch in sorted(call.branch_tags)],
        reinvites=[[cseq, tag, side.value] for (cseq, tag), side in (call.reinvites or {}).items()],
        flags=sorted(call.flags),
        endpoints=[_key_out(key) for key in call.endpoints],
        offered_not_rtp=[_key_out(key) for key in call.offered_not_rtp],
        last_sdp={side: body.hex() for side, body in (call.last_sdp or {}).items()},
        answer_hop=list(call.answer_hop) if call.answer_hop is not None else None,
        answer_aliases=sorted(call.answer_aliases),
        other_answers=[list(answer) for answer in call.other_answers],
        holds=[[h.by.value, h.held_us, h.resumed_us] for h in call.holds],
        pending_offer=None
        if offer is None
        else [offer.method, offer.cseq, offer.from_tag, offer.by.value, offer.holding, offer.at_us],
        refer=None
        if refer is None
        else [refer.by.value, refer.referred_to, refer.referred_by, refer.cseq, refer.status],
        gaps=[list(gap) for gap in call.gaps],
        flows=[
            {
                "src_ip": flow.src_ip.hex(),
                "src_port": flow.src_port,
                "dst_ip": flow.dst_ip.hex(),
                "dst_port": flow.dst_port,
                "rtpmap": _rtpmap_out(flow.rtpmap),
                "indexed": indexed.get(flow.key) is flow,
                "streams": [[ssrc.hex(), stream_state(s)] for ssrc, s in flow.streams.items()],
            }
            for flow in call.flows
        ],
    )
    return data


def restore_dialog(data: dict, indexed: dict[bytes, MediaFlow]) -> Dialog:
    """The call of `dialog_data`; its flows still in the index go into `indexed`."""
    call = Dialog(**{name: data[name] for name in _PLAIN if name in data or name not in _LATER})
    if "origin_ip" not in data:
        call.origin_ip, call.origin_port = call.caller_ip, call.caller_port
        call.final_reached_caller = call.final_status is not None
    offer = data["pending_offer"]
    refer = data["refer"]
    call.state = State(data["state"])
    call.invite_branches = list(data["invite_branches"])
    call.to_tags = tuple(data["to_tags"])
    call.branch_tags = tuple(tuple(branch) for branch in data.get("branch_tags", ()))
    call.reinvites = {(cseq, tag): Side(side) for cseq, tag, side in data["reinvites"]}
    call.flags = set(data["flags"])
    call.endpoints = tuple(_key_in(key) for key in data["endpoints"])
    call.offered_not_rtp = tuple(_key_in(key) for key in data["offered_not_rtp"])
    call.last_sdp = {
        Side(side).value: bytes.fromhex(body) for side, body in data["last_sdp"].items()
    }
    call.answer_hop = tuple(data["answer_hop"]) if data["answer_hop"] is not None else None
    call.answer_aliases = set(data["answer_aliases"])
    call.other_answers = [tuple(answer) for answer in data["other_answers"]]
    call.holds = [Hold(Side(by), held, resumed) for by, held, resumed in data["holds"]]
    if offer is not None:
        call.pending_offer = Offer(offer[0], offer[1], offer[2], Side(offer[3]), *offer[4:])
    if refer is not None:
        call.refer = Refer(Side(refer[0]), *refer[1:])
    call.gaps = [tuple(gap) for gap in data["gaps"]]
    for saved in data["flows"]:
        flow = MediaFlow(
            call,
            bytes.fromhex(saved["src_ip"]),
            saved["src_port"],
            bytes.fromhex(saved["dst_ip"]),
            saved["dst_port"],
            _rtpmap_in(saved["rtpmap"]),
        )
        for ssrc, stream in saved["streams"]:
            restored = stream_from_state(stream)
            # A stream shares its flow's rtpmap, as `new_stream` makes it.
            restored._rtpmap = flow.rtpmap
            flow.streams[bytes.fromhex(ssrc)] = restored
        call.flows = [*call.flows, flow]
        if saved["indexed"]:
            indexed[flow.key] = flow
    return call


def expected_data(expected: dict) -> list:
    """The media index's announced endpoints, in order."""
    return [
        [
            _key_out(key),
            [
                [e.call.call_id, e.side.value, _rtpmap_out(e.rtpmap), e.announced_us]
                for e in entries
            ],
        ]
        for key, entries in expected.items()
    ]


def restore_expected(data: list, calls: dict[str, Dialog]) -> dict:
    expected: dict = {}
    for key, entries in data:
        expected[_key_in(key)] = [
            _Endpoint(calls[call_id], Side(side), _rtpmap_in(rtpmap), announced)
            for call_id, side, rtpmap, announced in entries
        ]
    return expected


def chain_data(chain: _Chain) -> dict:
    """A REGISTER chain as plain data."""
    data = {slot: getattr(chain, slot) for slot in _Chain.__slots__ if slot != "heap_seq"}
    data.update(
        state=chain.state.value,
        flags=sorted(chain.flags),
        contacts=[[c.uri, c.expires] for c in chain.contacts],
        granted=[[c.uri, c.expires] for c in chain.granted],
    )
    return data


def restore_chain(data: dict) -> _Chain:
    chain = _Chain(data["call_id"], data["started_us"], data["cseq"])
    for slot in _Chain.__slots__:
        if slot != "heap_seq":
            setattr(chain, slot, data[slot])
    chain.state = _ChainState(data["state"])
    chain.flags = set(data["flags"])
    chain.contacts = [_Contact(uri, expires) for uri, expires in data["contacts"]]
    chain.granted = [_Contact(uri, expires) for uri, expires in data["granted"]]
    return chain
