"""libndpi as voiplog's application classifier: a ctypes binding of the system library.

Strategy: `load` finds the installed libndpi (no copy ships with voiplog and
nothing is compiled), reads its release and hands it to the adapter module
written for that release's ABI (``_v4_2`` for 4.2); an unknown release, a
missing library or a missing symbol is refused with `NdpiUnavailable` and a
one-line reason, never a crash. `NdpiClassifier` is the release-independent
part: it implements `voiplog.flows.AppClassifier` on top of the adapter's
`Engine`, and ``_names`` turns nDPI's names into voiplog's.

nDPI wants layer-3 packets, so each UDP datagram is given a minimal IPv4 or
IPv6 header and a UDP header made from the flow's 5-tuple (checksums zero).
A flow is decided when nDPI has named a protocol and says no further dissection
can refine it (a STUN flow may still turn into ``STUN.WhatsAppCall``), or at
`MAX_DATAGRAMS`, where the flow is given up with nDPI's guess allowed, as
ndpiReader does. After its verdict a flow is never passed to nDPI again:
`NdpiClassifier.feed` returns the same verdict without a call.

nDPI names generic protocols (RTP, STUN, DTLS) as soon as it sees them and
drops what it knew of the addresses; such a verdict whose other end is in a
call application's published ranges is given that application, with
confidence ``ip``. `NdpiClassifier.host_app` does the same with nDPI's
host-name rules for a name seen elsewhere (a TLS server name, a DNS answer).

This runs for the first datagrams of every unknown UDP flow on an edge link,
so the per-datagram path is one struct pack, one ctypes call and, once nDPI
names something, one more; verdicts are built once per distinct detection and
shared.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
import struct
import zlib
from dataclasses import replace
from types import ModuleType
from typing import Any

from voiplog.errors import UsageError
from voiplog.flows._apps import AppVerdict
from voiplog.ndpi import _names


class NdpiUnavailable(Exception):
    """libndpi cannot be used here; the message says why in one line."""


ADAPTERS = {"4.2": "voiplog.ndpi._v4_2"}
"""nDPI release (``major.minor``) -> the adapter module for its ABI."""

LIBRARY_ENV = "VOIPLOG_NDPI_LIBRARY"
"""Environment variable naming the libndpi file to load instead of the system's."""

_SONAMES = ("libndpi.so.4.2", "libndpi.so.4")

MAX_DATAGRAMS = 24
"""Datagrams of one flow before it is given up undecided (ndpiReader's UDP limit)."""

MAX_HOST_NAME = 253
"""The longest DNS name in text form; `NdpiClassifier.host_app` matches nothing longer."""

_IPV4_UDP = struct.Struct("!BBHHHBBH4s4sHHHH")
_IPV6_UDP = struct.Struct("!IHBB16s16sHHHH")
_UDP = 17
_TTL = 64
# nDPI takes the packet length as an unsigned short.
_MAX_IPV4_PAYLOAD = 0xFFFF - _IPV4_UDP.size
_MAX_IPV6_PAYLOAD = 0xFFFF - 8


def adapter_for(revision: str) -> ModuleType:
    """The adapter module for an nDPI release such as ``4.2.0``."""
    release = ".".join(revision.split(".")[:2])
    module = ADAPTERS.get(release)
    if module is None:
        supported = ", ".join(sorted(ADAPTERS))
        raise NdpiUnavailable(f"ndpi version {revision} not supported (supported: {supported})")
    return importlib.import_module(module)


def _open_library(path: str | None) -> ctypes.CDLL:
    if path is not None:
        try:
            return ctypes.CDLL(path)
        except OSError as error:
            raise NdpiUnavailable(f"libndpi not found in {path}: {error}") from None
    # The sonames of the releases an adapter speaks for are tried first: asking the
    # system (find_library) runs ldconfig and loads ctypes.util, which with a known
    # release installed would only name the same file.
    errors = {}
    for soname in _SONAMES:
        try:
            return ctypes.CDLL(soname)
        except OSError as error:
            errors[soname] = str(error)
    from ctypes.util import find_library

    found = find_library("ndpi")
    if found and found not in errors:
        try:
            return ctypes.CDLL(found)
        except OSError as error:
            errors[found] = str(error)
    candidates = [*([found] if found else []), *_SONAMES]
    raise NdpiUnavailable(
        f"libndpi not found in the system ({', '.join(candidates)}): {errors[candidates[0]]}"
    )


def _revision(lib: ctypes.CDLL) -> str:
    try:
        function = lib.ndpi_revision
    except AttributeError:
        raise NdpiUnavailable("the library has no ndpi_revision(): not libndpi") from None
    function.restype = ctypes.c_char_p
    function.argtypes = ()
    raw = function() or b""
    # Builds from git append the commit: "4.2.0-1234-abcdef".
    return raw.decode("ascii", "replace").split("-")[0].strip() or "unknown"


def load(library: str | None = None) -> NdpiClassifier:
    """An nDPI classifier over the system's libndpi (or ``library``, or $VOIPLOG_NDPI_LIBRARY).

    Raises `NdpiUnavailable` when the library is missing, of a release no adapter
    speaks for, or not built as the adapter expects.
    """
    if library is None:
        library = os.environ.get(LIBRARY_ENV) or None
    lib = _open_library(library)
    revision = _revision(lib)
    adapter = adapter_for(revision)
    adapter.check(lib, revision)
    # nDPI's detection module takes about 0.15 s to build (its protocol and
    # address tables): built on first use, so that a run that never needs it
    # (a capture of SIP calls alone) never pays for it.
    return NdpiClassifier(functools.partial(adapter.Engine, lib, revision), revision=revision)


class _Flow:
    """One flow's state: its nDPI flow struct and what was decided of it."""

    __slots__ = ("datagrams", "pointer", "verdict")

    def __init__(self, pointer: int) -> None:
        self.pointer: int | None = pointer
        self.datagrams = 0
        self.verdict: AppVerdict | None = None


class NdpiClassifier:
    """`voiplog.flows.AppClassifier` over one nDPI detection module.

    Not thread-safe: nDPI's module holds per-packet state. Use one per thread,
    and `close` it (or use it as a context manager) to free the module.
    """

    def __init__(
        self,
        engine: Any,
        server_cache_size: int = 65536,
        host_cache_size: int = 4096,
        revision: str | None = None,
    ) -> None:
        """``engine``: an adapter's `Engine` (``_v4_2.Engine``), whose close this owns,
        or a callable that makes one when first needed (then give ``revision``)."""
        if hasattr(engine, "process"):
            self._factory = None
            self._started = engine
            revision = engine.revision
        else:
            self._factory = engine
            self._started = None
        self.name = f"ndpi {revision}"
        self._closed = False
        self._ipv6_as_ipv4 = False
        self._process = self._lazy("_process")
        self._extra = self._lazy("_extra")
        self._match_host = self._lazy("_match_host")
        if self._started is not None:
            self._bind(self._started)
        self._verdicts: dict[tuple, AppVerdict] = {}
        self._servers: dict[bytes, str | None] = {}
        self._server_cache_size = server_cache_size
        self._protocol_apps: dict[int, str | None] = {}
        self._hosts: dict[str, str | None] = {}
        self._host_cache_size = host_cache_size

    def __enter__(self) -> NdpiClassifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _engine(self) -> Any:
        """The adapter's engine, built (and its calls bound) on first use."""
        engine = self._started
        if engine is None:
            if self._closed:
                raise UsageError("the nDPI classifier is closed")
            engine = self._started = self._factory()
            self._bind(engine)
        return engine

    def _bind(self, engine: Any) -> None:
        # Bound to attributes, so that the per-datagram path is one ctypes call.
        self._process = engine.process
        self._extra = engine.extra_dissection_possible
        self._match_host = engine.match_host
        self._free_flow = engine.free_flow
        self._ipv6_as_ipv4 = getattr(engine, "ipv6_as_ipv4", False)

    def _lazy(self, name: str) -> Any:
        def first_call(*args: Any) -> Any:
            self._engine  # noqa: B018 - builds the engine, which rebinds `name`
            return getattr(self, name)(*args)

        return first_call

    def close(self) -> None:
        """Free the detection module. Release the flows first: their structs are the caller's."""
        if self._started is not None:
            self._started.close()
            self._started = None
        self._closed = True
        self._factory = None
        self._process = self._extra = self._match_host = _closed

    def new_flow(self) -> _Flow:
        return _Flow(self._engine.new_flow())

    def feed(
        self,
        flow: _Flow,
        ts_us: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        payload: bytes,
    ) -> AppVerdict | None:
        """One UDP datagram of ``flow``: the verdict once decided, else None.

        A decided flow returns its verdict again without calling nDPI; the
        caller is expected to stop feeding it (and release it) anyway.
        """
        verdict = flow.verdict
        if verdict is not None:
            return verdict
        pointer = flow.pointer
        if pointer is None:
            raise UsageError("feed() of a released flow")
        if len(src) == 16 and self._ipv6_as_ipv4:
            src, dst = _stand_in(src), _stand_in(dst)
        if len(src) == 4:
            if len(payload) > _MAX_IPV4_PAYLOAD:
                payload = payload[:_MAX_IPV4_PAYLOAD]
            size = len(payload) + 8
            packet = (
                _IPV4_UDP.pack(
                    0x45, 0, size + 20, 0, 0, _TTL, _UDP, 0, src, dst, sport, dport, size, 0
                )
                + payload
            )
        else:
            if len(payload) > _MAX_IPV6_PAYLOAD:
                payload = payload[:_MAX_IPV6_PAYLOAD]
            size = len(payload) + 8
            packet = (
                _IPV6_UDP.pack(0x60000000, size, _UDP, _TTL, src, dst, sport, dport, size, 0)
                + payload
            )
        found = self._process(pointer, packet, len(packet), ts_us // 1000)
        flow.datagrams += 1
        if (found.app_protocol or found.master_protocol) and not self._extra(pointer):
            verdict = self._verdict(
                found.master_protocol,
                found.app_protocol,
                found.category,
                self._engine.confidence(pointer),
            )
            if verdict.app is None and not verdict.excluded:
                verdict = self._by_address(verdict, src, dst)
            flow.verdict = verdict
            return verdict
        if flow.datagrams >= MAX_DATAGRAMS:
            return self.give_up(flow)
        return None

    def give_up(self, flow: _Flow) -> AppVerdict:
        """nDPI's best verdict for an undecided flow, a guess allowed; ``Unknown`` if none.

        A guess by the flow's addresses or ports keeps that confidence (``ip``,
        ``port``); any other guess is ``guess``.
        """
        verdict = flow.verdict
        if verdict is not None:
            return verdict
        if flow.pointer is None or not flow.datagrams:
            # Released, or never fed: nothing for nDPI to guess from.
            verdict = self._verdict(0, 0, 0, "unknown")
        else:
            found, guessed = self._engine.giveup(flow.pointer)
            confidence = self._engine.confidence(flow.pointer)
            if guessed and confidence not in ("ip", "port"):
                confidence = "guess"
            verdict = self._verdict(
                found.master_protocol, found.app_protocol, found.category, confidence
            )
        flow.verdict = verdict
        return verdict

    def release(self, flow: _Flow) -> None:
        """Free the flow's nDPI state; releasing twice is harmless."""
        pointer = flow.pointer
        if pointer is not None:
            flow.pointer = None
            # A flow's struct outlives the module (it is the caller's): freed
            # even after close, with the call bound when the engine was built.
            self._free_flow(pointer)

    def server_app(self, ip: bytes) -> str | None:
        """The call application whose published ranges nDPI knows hold ``ip``.

        IPv4 only with 4.2 (its range tree has no IPv6); cached, as the same
        relays come up flow after flow.
        """
        servers = self._servers
        try:
            return servers[ip]
        except KeyError:
            pass
        app = self._app_of(self._engine.match_address(ip))
        if len(servers) >= self._server_cache_size:
            # Cheaper than an LRU and as good here: the relays in use come straight back.
            servers.clear()
        servers[ip] = app
        return app

    def host_app(self, name: str) -> str | None:
        """The call application that nDPI's host-name rules put ``name`` in, else None.

        ``name`` is a host name as a TLS server name or an HTTP host carries it
        (``g.whatsapp.net``, ``eu-west123.discord.media``), in any case; the
        answer is voiplog's application name (``whatsapp``, ``discord``), and
        None for a name of no call application (YouTube's) or of none at all.
        nDPI's rules are its own: 4.2 knows many applications only by
        subdomains (``.whatsapp.``, ``.zoom.us``), so the bare ``whatsapp.net``
        or ``zoom.us`` is in no application, as it would be for nDPI's own
        detection of a flow. Empty names, names longer than `MAX_HOST_NAME`
        and names not in ASCII (IDNA's ``xn--`` form is) match nothing.

        Cached, as the same few servers come up flow after flow.
        """
        hosts = self._hosts
        try:
            return hosts[name]
        except KeyError:
            pass
        if not name or len(name) > MAX_HOST_NAME or not name.isascii():
            return None
        app = self._app_of(self._match_host(name.lower().encode("ascii")))
        if len(hosts) >= self._host_cache_size:
            hosts.clear()  # as for servers: the names in use come straight back
        hosts[name] = app
        return app

    def _app_of(self, protocol: int) -> str | None:
        """The call application of one nDPI protocol id (0: none); remembered per id."""
        try:
            return self._protocol_apps[protocol]
        except KeyError:
            pass
        app = _names.APPS.get(self._engine.id_name(protocol)) if protocol else None
        # Bounded by nDPI's protocol ids, a few hundred.
        self._protocol_apps[protocol] = app
        return app

    def _verdict(self, master: int, app: int, category: int, confidence: str) -> AppVerdict:
        key = (master, app, category, confidence)
        verdict = self._verdicts.get(key)
        if verdict is None:
            engine = self._engine
            category_name = engine.category_name(master, app, category)
            name, call, call_app, excluded, call_protocol = _names.judge(
                engine.id_name(master) if master else "Unknown",
                engine.id_name(app) if app else "Unknown",
                category_name,
            )
            verdict = self._verdicts[key] = AppVerdict(
                protocol=engine.protocol_name(master, app),
                app=name,
                category=category_name,
                confidence=confidence if master or app else "unknown",
                call=call,
                call_app=call_app,
                excluded=excluded,
                call_protocol=call_protocol,
            )
        return verdict

    def _by_address(self, verdict: AppVerdict, src: bytes, dst: bytes) -> AppVerdict:
        """A verdict of no application, given the one whose ranges hold an end, if any.

        RTP to a WhatsApp relay is WhatsApp all the same.
        """
        owner = self.server_app(src) or self.server_app(dst)
        if owner is None:
            return verdict
        key = (verdict, owner)
        found = self._verdicts.get(key)
        if found is None:
            found = self._verdicts[key] = replace(
                verdict, app=owner, call_app=True, confidence="ip"
            )
        return found


def _stand_in(address: bytes) -> bytes:
    """An IPv4 address that stands for an IPv6 one when an adapter dissects IPv6
    as IPv4: stable for the address, in 198.18.0.0/15 (RFC 2544's benchmarking
    range, in no application's address list, so nothing is named by range)."""
    digest = zlib.crc32(address)
    return bytes((198, 18 | (digest >> 16) & 1, (digest >> 8) & 0xFF, digest & 0xFF))


def _closed(*args: object) -> object:
    raise UsageError("the nDPI classifier is closed")
