"""App calls: the flows of one call of one application, gathered into one record.

Strategy: an app call (WhatsApp, Telegram, Zoom...) is several UDP flows: ICE
checks to several candidates, a relay, a peer-to-peer path, a switch of path in
mid-call. The flow classifier decides flow by flow (`AppVerdict` from the
application classifier, two-way real-time traffic from its own counts); this
table gathers the flows of one subscriber address with one application that
overlap in time into one `AppCall`:

* a flow that qualified as call media opens (or joins) the call of its key
  ``(app, anchor address)``, and the call stays open while any of its media
  flows is open;
* a flow of the same application without media (ICE checks, a TURN allocation
  never used) joins the call it overlaps, or waits ``join_gap`` for one; if none
  comes, it was a call attempt without media, which is counted, not written;
* a call whose last media flow closed ``join_gap`` ago is finished: a new flow of
  the same key after that is a new call;
* an app keeps one local socket for a call (its ICE checks, relays and peer
  path), so a media flow from a subscriber socket the call has not used, when
  none of the call's flows has carried a datagram for ``new_socket_gap``, is
  the next call: the old one is retired (it takes no new flow, and is finished
  when its open flows close) even though its flows have not yet timed out.

Only packet time is used; the table is bounded (``max_calls`` open or waiting
calls, ``max_pending`` flows without media), and a full table finishes its
least recently active call that has no open flow early rather than drop it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from voiplog._frozen import fast_frozen_init

AppCallKey = tuple[str, bytes]  # (application name, anchor address, packed)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class AppFlow:
    """One flow of an app call, as it closed: what its record lists of it."""

    first_us: int
    last_us: int
    anchor: tuple[bytes, int]  # the subscriber's end (address, port)
    far: tuple[bytes, int]  # the other end: a relay, a server or the peer
    packets: tuple[int, int]  # from the anchor, to the anchor
    octets: tuple[int, int]
    media: bool  # carried call media (else only STUN/ICE or TURN control)
    entry: dict[str, Any]  # its description in the record, times and addresses formatted
    streams: tuple = ()  # MediaStream objects of the RTP it carried
    protocols: frozenset[str] = frozenset()
    evicted: bool = False
    label: dict[str, Any] | None = None  # the flow's application label
    details: dict[str, Any] = field(default_factory=dict)  # STUN and DTLS facts, or None


@dataclass(slots=True)
class AppCall:
    """Tracking state of one app call; its record is built when it is finished."""

    key: AppCallKey
    first_us: int
    last_us: int
    open_flows: int = 0
    flows: list[AppFlow] = field(default_factory=list)
    verdicts: list = field(default_factory=list)  # AppVerdict of each media flow
    sockets: set[int] = field(default_factory=set)  # the subscriber's ports it used
    fars: set[bytes] = field(default_factory=set)  # the far addresses of its flows
    live: list = field(default_factory=list)  # its open flows (anything with ``last_us``)
    retired: bool = False  # a later call of its key took its place
    gaps: list[tuple[int, int]] = field(default_factory=list)  # restarts it lived through

    def active_us(self) -> int:
        """The last packet of any of its flows, open or closed."""
        return max((flow.last_us for flow in self.live), default=self.last_us)


class AppCallTable:
    """Open and recently ended app calls by key, least recently active first."""

    def __init__(
        self, join_gap_us: int, max_calls: int, max_pending: int, new_socket_gap_us: int
    ) -> None:
        self._join_gap_us = join_gap_us
        self._new_socket_gap_us = new_socket_gap_us
        self._max_calls = max_calls
        self._max_pending = max_pending
        self._calls: OrderedDict[AppCallKey, AppCall] = OrderedDict()
        # Flows without media waiting for a call of their key: key -> flows.
        self._pending: OrderedDict[AppCallKey, list[AppFlow]] = OrderedDict()
        self._pending_count = 0
        # The last packet of each recent attempt without media, by key.
        self._attempt_ends: OrderedDict[AppCallKey, int] = OrderedDict()
        # Every call in the table or retired, by the subscriber address of its key.
        self._by_anchor: dict[bytes, list[AppCall]] = {}
        # Calls a later call of their key replaced, until their open flows close.
        self._retired: list[AppCall] = []
        self._done: list[AppCall] = []
        self.attempts_without_media = 0

    def __len__(self) -> int:
        return len(self._calls)

    def open(
        self,
        key: AppCallKey,
        first_us: int,
        verdict: object,
        socket: int,
        far: bytes,
        live: object,
    ) -> AppCall:
        """A flow qualified as media of an app call: the call it belongs to.

        ``socket`` is the flow's port on the subscriber's side, ``far`` the
        address of its other end; ``live`` the flow itself (anything with
        ``last_us``), until it is closed with `close`.
        """
        call = self._calls.get(key)
        if call is not None:
            if call.open_flows == 0 and first_us - call.last_us > self._join_gap_us:
                self._finish(call)
                call = None
            elif (
                socket not in call.sockets and first_us - call.active_us() > self._new_socket_gap_us
            ):
                self._retire(call)
                call = None
        if call is None:
            if len(self._calls) >= self._max_calls:
                self._finish_one_waiting()
            call = AppCall(key, first_us, first_us)
            self._calls[key] = call
            self._by_anchor.setdefault(key[1], []).append(call)
            stale = False
            for flow in self._pending.pop(key, ()):
                self._pending_count -= 1
                if flow.last_us >= first_us - self._join_gap_us:
                    self._add(call, flow)
                else:
                    stale = True
            self.attempts_without_media += stale
        else:
            self._calls.move_to_end(key)
        call.open_flows += 1
        call.live.append(live)
        call.sockets.add(socket)
        call.fars.add(far)
        call.verdicts.append(verdict)
        call.first_us = min(call.first_us, first_us)
        return call

    def close(self, call: AppCall, live: object, flow: AppFlow | None) -> None:
        """A media flow of ``call`` closed (``flow`` None: it was dropped, and adds nothing)."""
        call.open_flows -= 1
        call.live.remove(live)
        if flow is not None:
            self._add(call, flow)
        if call.retired and not call.open_flows:
            self._retired.remove(call)
            self._finish(call)

    def side_flow(self, key: AppCallKey, flow: AppFlow) -> None:
        """A flow of a call application closed without media: it joins a call or waits."""
        socket = flow.anchor[1]
        for retired in self._retired:
            # A retired call still takes the side flows of its own socket.
            if retired.key == key and socket in retired.sockets:
                self._add(retired, flow)
                return
        call = self._calls.get(key)
        if call is not None and (
            call.open_flows or flow.first_us - call.last_us <= self._join_gap_us
        ):
            self._add(call, flow)
            return
        if self._pending_count >= self._max_pending:
            oldest_key, flows = next(iter(self._pending.items()))
            self._pending_count -= 1
            flows.pop(0)
            if not flows:
                del self._pending[oldest_key]
                self.attempts_without_media += 1
        self._pending.setdefault(key, []).append(flow)
        self._pending.move_to_end(key)
        self._pending_count += 1

    def beside(self, ends: tuple[bytes, bytes], first_us: int, last_us: int) -> AppCall | None:
        """The app call that a media flow between ``ends`` (packed addresses)
        belongs to although no classifier named its application: one of a
        subscriber at one end that already has a flow to the other end and
        overlaps the flow in time (an app's plain RTP beside its named control
        flows), else None."""
        for near, far in (ends, ends[::-1]):
            for call in self._by_anchor.get(near, ()):
                if (
                    far in call.fars
                    and first_us <= call.active_us() + self._join_gap_us
                    and last_us >= call.first_us - self._join_gap_us
                ):
                    return call
        return None

    def add(self, call: AppCall, flow: AppFlow) -> None:
        """A closed flow that `beside` put in ``call``."""
        self._add(call, flow)

    def expire(self, now_us: int) -> list[AppCall]:
        """Finish the calls with no open flow for longer than the join gap; return them."""
        gap = self._join_gap_us
        for call in list(self._calls.values()):
            if not call.open_flows and now_us - call.last_us > gap:
                self._finish(call)
        for key in list(self._pending):
            flows = self._pending[key]
            keep = [f for f in flows if now_us - f.last_us <= gap]
            self._pending_count -= len(flows) - len(keep)
            if keep:
                self._pending[key] = keep
            else:
                del self._pending[key]
                self._attempt(key, flows)
        return self._take()

    def close_all(self) -> list[AppCall]:
        """Finish every call (its open flows were closed before); count waiting flows."""
        for call in self._retired:
            self._finish(call)
        self._retired.clear()
        for call in list(self._calls.values()):
            self._finish(call)
        for key, flows in self._pending.items():
            self._attempt(key, flows)
        self._pending.clear()
        self._pending_count = 0
        return self._take()

    def _attempt(self, key: AppCallKey, flows: list[AppFlow]) -> None:
        """Count flows without media that no call took: those of one application
        and subscriber that overlap (or follow within the gap) one attempt's were
        that attempt, however many relays it tried and whenever each flow ended."""
        first = min(f.first_us for f in flows)
        last = max(f.last_us for f in flows)
        ends = self._attempt_ends
        previous = ends.get(key)
        if previous is None or first > previous + self._join_gap_us:
            self.attempts_without_media += 1
            if len(ends) >= self._max_pending:
                ends.popitem(last=False)
        ends[key] = max(last, previous or 0)
        ends.move_to_end(key)

    def _add(self, call: AppCall, flow: AppFlow) -> None:
        call.flows.append(flow)
        call.sockets.add(flow.anchor[1])
        call.fars.add(flow.far[0])
        call.first_us = min(call.first_us, flow.first_us)
        call.last_us = max(call.last_us, flow.last_us)

    def _finish_one_waiting(self) -> None:
        # A call with open flows stays: those flows are bounded by the session
        # table, and finishing their call early would split it.
        for call in self._calls.values():
            if not call.open_flows:
                self._finish(call)
                return

    def _retire(self, call: AppCall) -> None:
        del self._calls[call.key]
        call.retired = True
        self._retired.append(call)

    def _finish(self, call: AppCall) -> None:
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        same = self._by_anchor[call.key[1]]
        same.remove(call)
        if not same:
            del self._by_anchor[call.key[1]]
        if any(f.media for f in call.flows):
            self._done.append(call)

    def _take(self) -> list[AppCall]:
        done, self._done = self._done, []
        return done
