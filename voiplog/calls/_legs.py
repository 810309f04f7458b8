"""Legs of one call behind a B2BUA (an SBC, an IP-PBX), linked into one session.

Strategy: a B2BUA gives each leg a Call-ID of its own, so the call tracker sees
two calls. Every call opened is a `Leg` here, in a session of its own whose uid
is the leg's record uid. A leg is linked to an earlier one by the first
evidence found, strongest first (`Evidence`): a correlation header naming the
other leg (`X-CID` carrying its Call-ID, or the same value on both), the IMS
charging id, the RFC 7989 Session-ID of the caller, the HEP correlation id
the SIP came with; or else, when the leg is written, the same caller and callee
numbers with INVITEs, answers (or final answers) within `window_us` of each
other and a media address announced on both legs (the caller's, passed on by
a signalling-only B2BUA, or the media relay's of an SBC). Linked legs share the
session's uid: that of the leg whose INVITE came first, unless a leg was
already written with another (a uid once written never changes).

Records are written when calls end, and the legs of a session end at different
times: a leg's entries stay here while its call is open and for `keep_us` of
packet time after it was written (so that a leg still open can link to it),
at most `max_closed` written legs, oldest dropped first. Correlation keys point
at the first open leg that had them, else at the most recent written one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from sys import intern
from typing import TYPE_CHECKING

from voiplog.sip import uri_user

if TYPE_CHECKING:
    from voiplog.calls._dialog import Dialog


class Evidence(StrEnum):
    """What linked a leg to another (the record's `session_link`)."""

    X_CID = "x-cid"
    ICID = "icid"
    SESSION_ID = "session-id"
    HEP_CORRELATION = "hep-correlation"
    NUMBERS_AND_TIMES = "numbers-and-times"


# The correlation hints of a call that may name another leg, in the order they
# are trusted: (evidence, hint key in `Dialog.correlation`, whether the value
# may be the other leg's Call-ID).
_HINTS = (
    (Evidence.X_CID, "x_cid", True),
    (Evidence.ICID, "icid", False),
    (Evidence.SESSION_ID, "session_id", False),
    (Evidence.HEP_CORRELATION, "hep", True),
)

# Legs with the same numbers kept per pair of numbers (the newest), for the
# numbers-and-times evidence: a burst of calls between two numbers is rare.
_MAX_SAME_NUMBERS = 8
_NOT_PHONE = re.compile(r"[^0-9+\-.() ]")
_NOT_DIGIT = re.compile(r"[^0-9]")


@dataclass(slots=True, eq=False)
class _Session:
    root: Leg  # the leg the session is named after
    written: bool = False  # a leg was written with the root's uid: the root is fixed


@dataclass(slots=True, eq=False)
class Leg:
    """One call as a leg of a session, while open and for a while once written."""

    started_us: int
    call_id: str
    numbers: tuple[str, str] | None
    call: Dialog | None  # None once written
    # None: a session of its own (written once the leg is), made when linked.
    session: _Session | None = None
    uid: str | None = None  # its record's uid, known once asked for or written
    link: Evidence | None = None
    keys: tuple[tuple[str, str], ...] = ()
    # What the numbers-and-times evidence compares, kept when the call is written.
    answered_us: int | None = None
    settled_us: int | None = None  # the answer, else the final answer or CANCEL
    media: Sequence[tuple[bytes, int]] = ()  # announced endpoints
    expires_us: int = 0


# Kept, interned: the same numbers come back call after call (and a SIP scanner
# tries the same few extensions over and over).
@lru_cache(maxsize=16384)
def _number(user: str | None) -> str | None:
    """A party as compared across legs: the digits of a phone number (a B2BUA
    may add or strip a +, a prefix or a country code), else the user name."""
    if not user:
        return None
    if _NOT_PHONE.search(user) is None:
        # Without the international (00) or national (0) prefix.
        return intern(_NOT_DIGIT.sub("", user).lstrip("0")) or None
    return intern(user.lower())


def _same_party(a: str, b: str) -> bool:
    """The same number, or one the other with a prefix (both at least 6 long)."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 6 and short.isdigit() and long_.isdigit() and long_.endswith(short)


def _facts(leg: Leg) -> tuple[int | None, int | None, list[tuple[bytes, int]]]:
    call = leg.call
    if call is None:
        return leg.answered_us, leg.settled_us, leg.media
    settled = call.answered_us
    if settled is None:
        settled = call.final_us if call.final_us is not None else call.cancel_us
    return call.answered_us, settled, call.endpoints


class LegLinker:
    """Links calls of different Call-IDs that are legs of one session (sans-IO)."""

    def __init__(
        self, uid_of: Callable[[Dialog], str], window_us: int, keep_us: int, max_closed: int
    ) -> None:
        """`uid_of(call)` is the uid of a call's record (asked only when needed)."""
        self._uid_of = uid_of
        self.window_us = window_us
        self.keep_us = keep_us
        self.max_closed = max_closed
        self._open: dict[Dialog, Leg] = {}
        self._closed: OrderedDict[Leg, None] = OrderedDict()  # written, oldest first
        # Legs by (evidence, hint value), and by Call-ID (the bare string: one
        # tuple less per call).
        self._by_key: dict[tuple[str, str] | str, Leg] = {}
        self._by_numbers: dict[tuple[str, str], list[Leg]] = {}

    def __len__(self) -> int:
        return len(self._open) + len(self._closed)

    def open(self, call: Dialog) -> None:
        """A new call: a leg of a session of its own, perhaps linked at once."""
        caller = _number(uri_user(call.from_uri) if call.from_uri else None)
        callee = _number(uri_user(call.to_uri) if call.to_uri else None)
        numbers = (caller, callee) if caller and callee else None
        leg = Leg(call.started_us, call.call_id, numbers, call)
        self._open[call] = leg
        self._register(leg, call.call_id)
        if numbers is not None:
            bucket = self._by_numbers.setdefault((caller[-6:], callee[-6:]), [])
            bucket.append(leg)
            if len(bucket) > _MAX_SAME_NUMBERS:
                del bucket[0]
        if call.correlation is not None or call.hep_correlation is not None:
            self.note(call)

    def note(self, call: Dialog) -> None:
        """The call learnt correlation hints: link it by the first that names
        another leg, and let later legs find it by them."""
        leg = self._open.get(call)
        if leg is None or (call.correlation is None and call.hep_correlation is None):
            return
        hints = call.correlation or {}
        for evidence, name, may_be_call_id in _HINTS:
            value = call.hep_correlation if name == "hep" else hints.get(name)
            if not value:
                continue
            key = (evidence.value, value)
            other = self._by_key.get(key)
            if (other is None or other is leg) and may_be_call_id:
                other = self._by_key.get(value)
            if other is not None and other is not leg:
                self._link(leg, other, evidence)
            self._register(leg, key)

    def close(self, call: Dialog, uid: str, now_us: int) -> tuple[str, str | None]:
        """The call is written (its record's `uid`): its session uid and the
        evidence of its link."""
        leg = self._open.pop(call, None)
        if leg is None:
            return uid, None
        leg.uid = uid
        # Numbers and times link only legs that announced media (`_alike`).
        if leg.link is None and call.endpoints:
            for other in self._candidates(leg):
                if other.link is None and self._alike(leg, other):
                    self._link(leg, other, Evidence.NUMBERS_AND_TIMES)
                    break
        leg.answered_us, leg.settled_us, leg.media = _facts(leg)
        session = leg.session
        session_uid = self._uid(leg if session is None else session.root)
        leg.call = None
        if session is not None:
            session.written = True
        leg.expires_us = now_us + self.keep_us
        self._closed[leg] = None
        while len(self._closed) > self.max_closed:
            self._forget(next(iter(self._closed)))
        return session_uid, leg.link.value if leg.link is not None else None

    def expire(self, now_us: int) -> None:
        """Forget the written legs kept long enough."""
        closed = self._closed
        while closed:
            leg = next(iter(closed))
            if leg.expires_us > now_us:
                break
            self._forget(leg)

    # -- helpers -------------------------------------------------------------

    def _candidates(self, leg: Leg) -> list[Leg]:
        """The legs with the same numbers whose INVITEs came within the window of
        this one's, in the order they were opened: those still among the newest
        `_MAX_SAME_NUMBERS` of their numbers (this one too), open or written."""
        if leg.numbers is None:
            return []
        caller, callee = leg.numbers
        bucket = self._by_numbers.get((caller[-6:], callee[-6:]))
        if bucket is None or leg not in bucket:
            return []
        return [
            other
            for other in bucket
            if other is not leg
            and abs(other.started_us - leg.started_us) <= self.window_us
            and other.numbers is not None
            and _same_party(other.numbers[0], caller)
            and _same_party(other.numbers[1], callee)
        ]

    def _uid(self, leg: Leg) -> str:
        if leg.uid is None:
            leg.uid = self._uid_of(leg.call)
        return leg.uid

    def _register(self, leg: Leg, key: tuple[str, str] | str) -> None:
        current = self._by_key.get(key)
        if current is None or (current.call is None and leg.call is not None):
            self._by_key[key] = leg
            if isinstance(key, tuple):  # the Call-ID is not repeated in `keys`
                leg.keys += (key,)  # type: ignore[operator]

    def _link(self, leg: Leg, other: Leg, evidence: Evidence) -> None:
        """`leg` (open, not linked yet) joins the session of `other`."""
        if leg.link is not None or (leg.session is not None and leg.session is other.session):
            return
        session = other.session
        if session is None:
            session = other.session = _Session(other, written=other.call is None)
        root = session.root
        if not session.written and (leg.started_us, leg.call_id) < (root.started_us, root.call_id):
            session.root = leg
        leg.session = session
        leg.link = evidence
        if other.link is None:
            other.link = evidence

    def _alike(self, leg: Leg, other: Leg) -> bool:
        """Numbers-and-times: both answered within the window of each other (or
        neither, their final answers so), and a media address on both legs."""
        answered, settled, media = _facts(leg)
        other_answered, other_settled, other_media = _facts(other)
        if (answered is None) != (other_answered is None):
            return False
        if (settled is None) != (other_settled is None):
            return False
        if settled is not None and abs(settled - other_settled) > self.window_us:
            return False
        return not {ip for ip, _ in media}.isdisjoint(ip for ip, _ in other_media)

    def _forget(self, leg: Leg) -> None:
        self._closed.pop(leg, None)
        for key in (leg.call_id, *leg.keys):
            if self._by_key.get(key) is leg:
                del self._by_key[key]
        if leg.numbers is not None:
            caller, callee = leg.numbers
            bucket_key = (caller[-6:], callee[-6:])
            bucket = self._by_numbers.get(bucket_key)
            if bucket is not None and leg in bucket:
                bucket.remove(leg)
                if not bucket:
                    del self._by_numbers[bucket_key]
