"""REGISTER tracking: REGISTER transactions in, registration records out.

Strategy: one `_Chain` per Call-ID holds the REGISTER transaction in progress
and the challenges it drew. A UA keeps one Call-ID for all its registrations
to a registrar and raises the CSeq each time (RFC 3261 §10.2), so the chain
is told apart from the next refresh by its state: a challenged chain (401, 407,
or 423 asking for a longer expiry) goes on with the next, higher CSeq; a chain
that got any other final answer is over, and lingers only to absorb
retransmissions before it is written. Deadlines are packet time, in a
`DeadlineHeap` re-checked lazily when they fall due, as the call tracker does.
A chain leaves the tracker only through `_close`, which always yields a record.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

from voiplog.calls._deadlines import DeadlineHeap
from voiplog.cdr import RegistrationRecord, RegistrationResult, format_ts, make_uid
from voiplog.cdr.disposition import EndReason, RecordKind
from voiplog.cdr.sip_call import SubscriberLookup
from voiplog.errors import ParseError
from voiplog.settings import CallSettings
from voiplog.sip import (
    SipMessage,
    credentials_username,
    delta_seconds,
    parse_name_addr,
    uri_host,
    uri_port,
    uri_user,
)

_US = 1_000_000

# Final answers after which the UA is expected to send the REGISTER again on the
# same Call-ID with a higher CSeq: a digest challenge, or 423 Interval Too Brief
# (RFC 3261 §10.2.8) asking for a longer expiry.
_RETRYABLE = frozenset({401, 407, 423})


class _State(StrEnum):
    PENDING = "pending"  # REGISTER sent, no final answer yet
    RETRY_EXPECTED = "retry_expected"  # challenged (401/407) or 423: a retry should follow
    DONE = "done"  # final answer given; lingering for retransmissions


class _Input(StrEnum):
    """What a message is to the chain of its Call-ID."""

    SAME_REQUEST = "same_request"  # same CSeq and Via branch, or an older CSeq
    NEXT_REQUEST = "next_request"  # a new transaction for the chain's AoR
    OTHER_AOR = "other_aor"  # a new transaction for another AoR on the same Call-ID
    PROVISIONAL = "provisional"  # 1xx to the transaction in progress
    RETRYABLE = "retryable"  # 401, 407, 423 to the transaction in progress
    FINAL = "final"  # any other final answer to it


class _Action(StrEnum):
    RETRANSMITTED = "retransmitted"  # flag the chain, nothing else changes
    RETRY = "retry"  # the chain goes on with the new transaction
    REPLACE = "replace"  # the chain is over: write it, open one for the new request
    ANSWER = "answer"  # note the final answer
    IGNORE = "ignore"  # provisional, or a retransmitted final answer


_S, _I, _A = _State, _Input, _Action
# (state, input) -> (action, next state); REPLACE leaves the old chain behind.
_TRANSITIONS: dict[tuple[_State, _Input], tuple[_Action, _State | None]] = {
    (_S.PENDING, _I.SAME_REQUEST): (_A.RETRANSMITTED, _S.PENDING),
    # A new REGISTER before any final answer: the UA gave up on the last one.
    (_S.PENDING, _I.NEXT_REQUEST): (_A.REPLACE, None),
    (_S.PENDING, _I.OTHER_AOR): (_A.REPLACE, None),
    (_S.PENDING, _I.PROVISIONAL): (_A.IGNORE, _S.PENDING),
    (_S.PENDING, _I.RETRYABLE): (_A.ANSWER, _S.RETRY_EXPECTED),
    (_S.PENDING, _I.FINAL): (_A.ANSWER, _S.DONE),
    (_S.RETRY_EXPECTED, _I.SAME_REQUEST): (_A.RETRANSMITTED, _S.RETRY_EXPECTED),
    (_S.RETRY_EXPECTED, _I.NEXT_REQUEST): (_A.RETRY, _S.PENDING),
    # Some UAs register several lines on one Call-ID: each AoR is its own chain.
    (_S.RETRY_EXPECTED, _I.OTHER_AOR): (_A.REPLACE, None),
    (_S.RETRY_EXPECTED, _I.PROVISIONAL): (_A.IGNORE, _S.RETRY_EXPECTED),
    (_S.RETRY_EXPECTED, _I.RETRYABLE): (_A.IGNORE, _S.RETRY_EXPECTED),
    (_S.RETRY_EXPECTED, _I.FINAL): (_A.IGNORE, _S.RETRY_EXPECTED),
    (_S.DONE, _I.SAME_REQUEST): (_A.RETRANSMITTED, _S.DONE),
    (_S.DONE, _I.NEXT_REQUEST): (_A.REPLACE, None),
    (_S.DONE, _I.OTHER_AOR): (_A.REPLACE, None),
    (_S.DONE, _I.PROVISIONAL): (_A.IGNORE, _S.DONE),
    (_S.DONE, _I.RETRYABLE): (_A.IGNORE, _S.DONE),
    (_S.DONE, _I.FINAL): (_A.IGNORE, _S.DONE),
}


class _Contact:
    __slots__ = ("expires", "uri")

    def __init__(self, uri: str, expires: int | None) -> None:
        self.uri = uri
        self.expires = expires


class _Chain:
    __slots__ = (
        "aor",
        "attempts",
        "auth_user",
        "branch",
        "call_id",
        "contacts",
        "cseq",
        "final_us",
        "first_branch",
        "first_cseq",
        "flags",
        "granted",
        "granted_header",
        "header_expires",
        "heap_seq",
        "last_us",
        "registrar_ip",
        "registrar_port",
        "source_ip",
        "source_port",
        "started_us",
        "state",
        "status",
        "transport",
        "user_agent",
        "wildcard",
    )

    def __init__(self, call_id: str, ts_us: int, cseq: int) -> None:
        self.call_id = call_id
        self.started_us = ts_us
        self.last_us = ts_us
        self.cseq = cseq
        self.first_cseq = cseq
        self.branch: str | None = None  # Via branch of the REGISTER in progress
        self.first_branch: str | None = None
        self.attempts = 1  # REGISTER transactions in the chain
        self.state = _State.PENDING
        self.status: int | None = None
        self.final_us: int | None = None
        self.flags: set[str] = set()
        self.aor: str | None = None
        self.contacts: list[_Contact] = []
        self.wildcard = False
        self.header_expires: int | None = None
        self.auth_user: str | None = None
        self.user_agent: str | None = None
        self.granted: list[_Contact] = []  # Contacts of the 2xx, with their expiry
        self.granted_header: int | None = None  # Expires header of the 2xx
        self.source_ip = ""
        self.source_port = 0
        self.registrar_ip = ""
        self.registrar_port = 0
        self.transport = "udp"
        self.heap_seq = 0


def _contacts(msg: SipMessage, header_expires: int | None) -> tuple[list[_Contact], bool]:
    """The Contacts of a REGISTER or its answer, each with its expiry; and whether
    one was ``*`` (remove every binding)."""
    contacts = []
    wildcard = False
    for value in msg.get_all("contact"):
        if value.strip() == "*":
            wildcard = True
            continue
        try:
            contact = parse_name_addr(value)
        except ParseError:
            continue
        expires = delta_seconds(contact.param("expires"))
        contacts.append(_Contact(contact.uri, expires if expires is not None else header_expires))
    return contacts, wildcard


def _same_binding(a: str, b: str) -> bool:
    """Whether two Contact URIs name the same binding (registrars may reformat them)."""
    if a == b or a.lower() == b.lower():
        return True
    host = uri_host(a)
    return (
        host is not None
        and host == uri_host(b)
        and uri_port(a) == uri_port(b)
        and uri_user(a) == uri_user(b)
    )


def _in_transaction(branches: list[str], branch: str | None) -> bool:
    """Whether a message with these Via branches belongs to the transaction started
    with `branch`: a retransmission, a copy forwarded by a proxy, or an answer to
    either. Without branches to compare, assume so."""
    return branch is None or not branches or branch in branches


def _address(host: str | None) -> str | None:
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class RegistrationTracker:
    """Tracks REGISTER transaction chains by Call-ID; one record per chain."""

    def __init__(
        self,
        settings: CallSettings | None = None,
        lookup_subscriber: SubscriberLookup | None = None,
        on_weird: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or CallSettings()
        self._lookup_subscriber = lookup_subscriber or (
            lambda source, destination: (None, None, None)
        )
        self._weird = on_weird or (lambda kind: None)
        self._chains: OrderedDict[str, _Chain] = OrderedDict()
        self._recent_uids: OrderedDict[str, None] = OrderedDict()
        self._heap: DeadlineHeap[_Chain] = DeadlineHeap(self._chains)
        self._done: list[RegistrationRecord] = []

    @property
    def open_chains(self) -> int:
        return len(self._chains)

    def chains(self) -> list[_Chain]:
        """The open chains, least recently active first (for a saved state)."""
        return list(self._chains.values())

    def adopt(self, chains: list[_Chain]) -> None:
        """Take back chains of a saved state, each with its deadline."""
        for chain in chains:
            self._chains[chain.call_id] = chain
            self._schedule(chain)

    def on_request(
        self,
        msg: SipMessage,
        ts_us: int,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        transport: str,
    ) -> None:
        """Feed one REGISTER request seen at `ts_us`."""
        call_id = msg.call_id
        if call_id is None:
            return
        cseq = msg.cseq_num or 0
        branches = msg.via_branches
        branch = branches[0] if branches else None
        chain = self._chains.get(call_id)
        if chain is None:
            self._open(msg, call_id, cseq, ts_us, src_ip, src_port, dst_ip, dst_port, transport)
            return
        self._touch(chain, ts_us)
        if cseq < chain.cseq or (cseq == chain.cseq and _in_transaction(branches, chain.branch)):
            event = _Input.SAME_REQUEST
        elif (msg.to.uri if msg.to else None) == chain.aor:
            # A higher CSeq, or the same one in a new transaction (a new Via
            # branch: password guessers resend with the CSeq unchanged).
            event = _Input.NEXT_REQUEST
        else:
            event = _Input.OTHER_AOR
        action, state = _TRANSITIONS[chain.state, event]
        if action is _Action.RETRANSMITTED:
            if branch is not None and chain.branch is not None and branch != chain.branch:
                chain.flags.add("register_forwarded")  # seen again on the proxy's next hop
            else:
                chain.flags.add("register_retransmitted")
        elif action is _Action.RETRY:
            chain.flags.add("interval_too_brief" if chain.status == 423 else "auth_challenged")
            chain.cseq = cseq
            chain.branch = branch
            chain.attempts += 1
            chain.status = None
            chain.final_us = None
            self._read_request(chain, msg)
        elif action is _Action.REPLACE:
            if chain.state is _State.PENDING:
                self._weird("sip.register_unanswered")
            self._close(chain, None)
            self._open(msg, call_id, cseq, ts_us, src_ip, src_port, dst_ip, dst_port, transport)
            return
        if state is not None and state is not chain.state:
            chain.state = state
            self._schedule(chain)

    def on_response(self, msg: SipMessage, ts_us: int) -> None:
        """Feed one response whose CSeq method is REGISTER."""
        chain = self._chains.get(msg.call_id) if msg.call_id is not None else None
        if chain is None or msg.cseq_num != chain.cseq:
            return
        if not _in_transaction(msg.via_branches, chain.branch):
            return  # answers an earlier attempt with the same CSeq
        self._touch(chain, ts_us)
        status = msg.status or 0
        if status < 200:
            event = _Input.PROVISIONAL
        elif status in _RETRYABLE:
            event = _Input.RETRYABLE
        else:
            event = _Input.FINAL
        action, state = _TRANSITIONS[chain.state, event]
        if action is not _Action.ANSWER or state is None:
            return
        chain.state = state
        chain.status = status
        chain.final_us = ts_us
        if 200 <= status < 300:
            chain.granted_header = delta_seconds(msg.get("expires"))
            chain.granted, _ = _contacts(msg, chain.granted_header)
        self._schedule(chain)

    def expire(self, now_us: int) -> list[RegistrationRecord]:
        """Close every chain whose deadline has passed at packet time `now_us`."""
        while (chain := self._heap.pop_due(now_us)) is not None:
            deadline = self._deadline(chain)
            if deadline > now_us:
                self._heap.schedule(chain, deadline)
                continue
            self._close(chain, None)
        return self.take_records()

    def close_all(self, reason: EndReason = EndReason.END_OF_INPUT) -> list[RegistrationRecord]:
        """Close every chain (end of input, or shutdown), oldest first."""
        for chain in sorted(self._chains.values(), key=lambda c: (c.started_us, c.call_id)):
            self._close(chain, None if chain.state is _State.DONE else reason)
        return self.take_records()

    def take_records(self) -> list[RegistrationRecord]:
        done, self._done = self._done, []
        return done

    def has_records(self) -> bool:
        """Whether `take_records` would give any."""
        return bool(self._done)

    # -- helpers -------------------------------------------------------------

    def _unique_uid(self, *facts) -> str:
        # The same REGISTER seen again once its chain was written early (evicted,
        # or a copy at the same instant) would repeat the uid; the store would
        # then keep only one of the two records. Recent uids are remembered and
        # a repeat gets the next occurrence number: still the same for the
        # same input.
        uid = make_uid("registration", *facts)
        occurrence = 1
        while uid in self._recent_uids:
            occurrence += 1
            uid = make_uid("registration", *facts, occurrence)
        self._recent_uids[uid] = None
        if len(self._recent_uids) > 2 * self.settings.max_open_registrations + 1024:
            self._recent_uids.popitem(last=False)
        return uid

    def _open(
        self,
        msg: SipMessage,
        call_id: str,
        cseq: int,
        ts_us: int,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        transport: str,
    ) -> None:
        if len(self._chains) >= self.settings.max_open_registrations:
            _, oldest = next(iter(self._chains.items()))
            self._weird("registrations.evicted")
            self._close(oldest, None if oldest.state is _State.DONE else EndReason.EVICTED)
        chain = _Chain(call_id, ts_us, cseq)
        chain.source_ip, chain.source_port = src_ip, src_port
        chain.registrar_ip, chain.registrar_port = dst_ip, dst_port
        chain.transport = transport
        chain.branch = chain.first_branch = msg.via_branch
        chain.aor = msg.to.uri if msg.to else None
        self._read_request(chain, msg)
        self._chains[call_id] = chain
        self._schedule(chain)

    @staticmethod
    def _read_request(chain: _Chain, msg: SipMessage) -> None:
        """What the REGISTER asks for; a retry replaces what the first attempt asked."""
        chain.header_expires = delta_seconds(msg.get("expires"))
        chain.contacts, chain.wildcard = _contacts(msg, chain.header_expires)
        chain.auth_user = credentials_username(
            msg.get("authorization") or msg.get("proxy-authorization")
        )
        chain.user_agent = msg.get("user-agent") or chain.user_agent

    def _touch(self, chain: _Chain, ts_us: int) -> None:
        if ts_us > chain.last_us:
            chain.last_us = ts_us
        self._chains.move_to_end(chain.call_id)

    def _deadline(self, chain: _Chain) -> int:
        s = self.settings
        if chain.state is _State.DONE:
            return max(chain.final_us or 0, chain.last_us) + int(s.linger_s * _US)
        return chain.last_us + int(s.register_timeout_s * _US)

    def _schedule(self, chain: _Chain) -> None:
        self._heap.schedule(chain, self._deadline(chain))

    def _close(self, chain: _Chain, reason: EndReason | None) -> None:
        self._chains.pop(chain.call_id, None)
        self._done.append(self._record(chain, reason))

    @staticmethod
    def _granted(chain: _Chain, contact: _Contact) -> int | None:
        """Expiry the registrar granted a contact, else what the REGISTER asked for."""
        if contact.expires == 0:
            return 0  # a removal: the answer lists the bindings that remain, not this one
        for granted in chain.granted:
            if _same_binding(granted.uri, contact.uri):
                return granted.expires if granted.expires is not None else contact.expires
        if len(chain.granted) == 1 and len(chain.contacts) == 1:
            only = chain.granted[0].expires
            if only is not None:
                return only
        if chain.granted_header is not None:
            return chain.granted_header
        return contact.expires

    def _record(self, chain: _Chain, reason: EndReason | None) -> RegistrationRecord:
        flags = set(chain.flags)
        if reason is not None:
            flags.add(reason.value)
        status = chain.status
        contact = chain.contacts[0] if chain.contacts else None
        answered = status is not None and 200 <= status < 300
        if contact is not None:
            expires = self._granted(chain, contact) if answered else contact.expires
        elif chain.wildcard:
            expires = 0
        else:
            expires = chain.granted_header if answered else chain.header_expires
        if chain.wildcard:
            flags.add("wildcard")
        elif contact is None:
            flags.add("query")  # no Contact: the UA only asked for its bindings
        if status is None:
            result = RegistrationResult.NO_RESPONSE
        elif answered:
            removing = chain.wildcard or (
                contact is not None and all(c.expires == 0 for c in chain.contacts)
            )
            result = (
                RegistrationResult.UNREGISTERED
                if removing or expires == 0
                else RegistrationResult.REGISTERED
            )
        elif status in (401, 407):
            result = RegistrationResult.CHALLENGED
        else:
            result = RegistrationResult.FAILED
        extra: dict = {}
        if chain.attempts > 1:
            extra["attempts"] = chain.attempts
        if len(chain.contacts) > 1:
            extra["contacts"] = [
                {"uri": c.uri, "expires_s": self._granted(chain, c) if answered else c.expires}
                for c in chain.contacts
            ]
        contact_uri = contact.uri if contact is not None else None
        # A Contact naming a host rather than an address proves nothing about an IP.
        contact_ip = _address(uri_host(contact_uri)) if contact_uri else None
        contact_port = uri_port(contact_uri) if contact_ip is not None else None
        subscriber_ip, direction, subscriber = self._lookup_subscriber(
            chain.source_ip, chain.registrar_ip
        )
        return RegistrationRecord(
            uid=self._unique_uid(
                chain.call_id,
                chain.started_us,
                chain.first_cseq,
                chain.first_branch,
                chain.source_ip,
                chain.source_port,
            ),
            kind=RecordKind.REGISTRATION,
            call_id=chain.call_id,
            aor=chain.aor,
            user=uri_user(chain.aor) if chain.aor else None,
            contact_uri=contact_uri,
            contact_ip=contact_ip,
            contact_port=contact_port,
            source_ip=chain.source_ip,
            source_port=chain.source_port,
            registrar_ip=chain.registrar_ip,
            registrar_port=chain.registrar_port,
            transport=chain.transport,
            expires_s=expires,
            auth_user=chain.auth_user,
            user_agent=chain.user_agent,
            status=status,
            result=result,
            requested_at=format_ts(chain.started_us) or "",
            answered_at=format_ts(chain.final_us),
            subscriber_ip=subscriber_ip,
            direction=direction,
            subscriber=subscriber,
            flags=tuple(sorted(flags)),
            extra=extra,
        )
