"""The libndpi 4.2 ABI: every signature, struct layout and constant this binding uses.

Strategy: nDPI changes its ABI from release to release (4.4 gives
``ndpi_detection_process_packet`` an ``input_info`` argument, later releases
widen ``ndpi_protocol`` and change how a module is set up), so everything that depends
on one release lives in one adapter module like this one, and the classifier in
``voiplog.ndpi`` talks only to the `Engine` it builds. Supporting another
release means writing another adapter with the same `open_engine` and `Engine`
and adding it to the table in ``voiplog.ndpi``.

The numbers below are those of Debian 12's libndpi 4.2.0 on x86_64
(``offsetof``/``sizeof`` against its headers); at load the
library's own ``ndpi_detection_get_sizeof_ndpi_flow_struct()`` must agree, else
the adapter refuses rather than read a field at the wrong place.
"""

from __future__ import annotations

import ctypes
import functools

from voiplog.errors import UsageError
from voiplog.ndpi import NdpiUnavailable

RELEASES = ("4.2",)
"""The ``ndpi_revision()`` prefixes this adapter speaks for."""
API_VERSION = 8668
"""``ndpi_get_api_version()`` of 4.2 (``NDPI_API_VERSION`` in ndpi_api.h)."""

_FLOW_STRUCT_SIZE = 688
"""``sizeof(struct ndpi_flow_struct)`` on x86_64; the layout check at load."""
_CONFIDENCE_OFFSET = 16
"""``offsetof(struct ndpi_flow_struct, confidence)``: after the protocol stack
(2 x u16), the four u16 guesses, the u8 ``l4_proto`` with its bit fields, padded."""
_NUM_FDS_BITS = 16
"""``NDPI_PROTOCOL_BITMASK`` is ``u32 fds_bits[NDPI_NUM_FDS_BITS]``: 512 protocol bits."""

CONFIDENCE = ("unknown", "port", "ip", "dpi_cache", "dpi")
"""``ndpi_confidence_t`` by value: UNKNOWN, MATCH_BY_PORT, MATCH_BY_IP, DPI_CACHE, DPI."""

_NAME_BUFFER = 64
_NO_MASTER = 0
"""``NDPI_PROTOCOL_UNKNOWN`` as the master protocol of a host-name match: the name
is judged alone. 4.2 returns the master for a name in one of its host-name
categories (ad networks, CDNs), whatever protocol rule it also matches, so such
a name comes out as no protocol."""


class NdpiProtocol(ctypes.Structure):
    """``ndpi_protocol``, returned by value from detection and give-up."""

    _fields_ = [
        ("master_protocol", ctypes.c_uint16),
        ("app_protocol", ctypes.c_uint16),
        ("category", ctypes.c_int),
    ]


class MatchResult(ctypes.Structure):
    """``ndpi_protocol_match_result``, filled in by a host-name match."""

    _fields_ = [
        ("protocol_id", ctypes.c_uint32),
        ("protocol_category", ctypes.c_int),
        ("protocol_breed", ctypes.c_int),
    ]


class _Bitmask(ctypes.Structure):
    _fields_ = [("fds_bits", ctypes.c_uint32 * _NUM_FDS_BITS)]


# (function, restype, argtypes). A pointer to an nDPI struct travels as c_void_p:
# Python sees it as an int and never looks inside.
_SIGNATURES = (
    ("ndpi_revision", ctypes.c_char_p, ()),
    ("ndpi_get_api_version", ctypes.c_uint16, ()),
    ("ndpi_detection_get_sizeof_ndpi_flow_struct", ctypes.c_uint32, ()),
    ("ndpi_init_detection_module", ctypes.c_void_p, (ctypes.c_uint32,)),
    ("ndpi_set_protocol_detection_bitmask2", None, (ctypes.c_void_p, ctypes.POINTER(_Bitmask))),
    ("ndpi_finalize_initialization", None, (ctypes.c_void_p,)),
    ("ndpi_exit_detection_module", None, (ctypes.c_void_p,)),
    ("ndpi_flow_malloc", ctypes.c_void_p, (ctypes.c_size_t,)),
    ("ndpi_free_flow", None, (ctypes.c_void_p,)),
    (
        "ndpi_detection_process_packet",
        NdpiProtocol,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ushort, ctypes.c_uint64),
    ),
    ("ndpi_extra_dissection_possible", ctypes.c_uint8, (ctypes.c_void_p, ctypes.c_void_p)),
    (
        "ndpi_detection_giveup",
        NdpiProtocol,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint8, ctypes.POINTER(ctypes.c_uint8)),
    ),
    (
        "ndpi_protocol2name",
        ctypes.c_char_p,
        (ctypes.c_void_p, NdpiProtocol, ctypes.c_char_p, ctypes.c_uint),
    ),
    ("ndpi_get_proto_name", ctypes.c_char_p, (ctypes.c_void_p, ctypes.c_uint16)),
    ("ndpi_category_get_name", ctypes.c_char_p, (ctypes.c_void_p, ctypes.c_int)),
    ("ndpi_get_proto_category", ctypes.c_int, (ctypes.c_void_p, NdpiProtocol)),
    ("ndpi_network_ptree_match", ctypes.c_uint16, (ctypes.c_void_p, ctypes.c_char_p)),
    (
        "ndpi_match_host_subprotocol",
        ctypes.c_uint16,
        (
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_char_p,  # read only, though declared char *
            ctypes.c_uint,
            ctypes.POINTER(MatchResult),
            ctypes.c_uint16,
        ),
    ),
)


def _bind(lib: ctypes.CDLL) -> None:
    for name, restype, argtypes in _SIGNATURES:
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise NdpiUnavailable(f"libndpi lacks {name}(): not a usable 4.2 build") from None
        function.restype = restype
        function.argtypes = argtypes


def open_engine(lib: ctypes.CDLL, revision: str) -> Engine:
    """A detection module of ``lib`` with every protocol enabled, after checking the ABI."""
    check(lib, revision)
    return Engine(lib, revision)


def check(lib: ctypes.CDLL, revision: str) -> None:
    """Bind ``lib``'s calls and check that it is built as this adapter expects;
    raise `NdpiUnavailable` saying how it differs."""
    _bind(lib)
    api = lib.ndpi_get_api_version()
    if api != API_VERSION:
        raise NdpiUnavailable(f"ndpi {revision} has API version {api}, expected {API_VERSION}")
    size = lib.ndpi_detection_get_sizeof_ndpi_flow_struct()
    if size != _FLOW_STRUCT_SIZE:
        raise NdpiUnavailable(
            f"ndpi {revision} flow struct is {size} bytes, expected {_FLOW_STRUCT_SIZE}: "
            "built with other options than this binding knows"
        )


class Engine:
    """One nDPI detection module and its prebound calls: what every adapter provides.

    Flows are pointers (ints from `new_flow`). ``process(flow, packet, length,
    ms)`` returns an object with ``master_protocol``, ``app_protocol`` and
    ``category``; ``extra_dissection_possible(flow)`` is truthy while nDPI may
    still refine its detection. Both have the module pointer bound in, so the
    per-datagram path is one ctypes call with no Python call around it.
    """

    def __init__(self, lib: ctypes.CDLL, revision: str) -> None:
        module = lib.ndpi_init_detection_module(0)
        if not module:
            raise NdpiUnavailable(f"ndpi {revision}: ndpi_init_detection_module() failed")
        everything = _Bitmask()
        ctypes.memset(ctypes.byref(everything), 0xFF, ctypes.sizeof(everything))
        lib.ndpi_set_protocol_detection_bitmask2(module, ctypes.byref(everything))
        lib.ndpi_finalize_initialization(module)
        self._lib = lib
        self._module = module
        self.revision = revision
        self.flow_size = _FLOW_STRUCT_SIZE
        # 4.2's STUN dissector runs over IPv4 only (and STUN is how it names
        # WhatsApp, Messenger, Signal, Meet, Teams calls): IPv6 datagrams are
        # handed over behind an IPv4 header with stand-in addresses.
        self.ipv6_as_ipv4 = True
        self.process = functools.partial(lib.ndpi_detection_process_packet, module)
        """(flow, layer-3 packet, its length, time in ms) -> NdpiProtocol."""
        self.extra_dissection_possible = functools.partial(
            lib.ndpi_extra_dissection_possible, module
        )
        self.free_flow = lib.ndpi_free_flow
        """Frees the flow and what nDPI allocated for it (host names, TLS/QUIC data)."""
        self._giveup = functools.partial(lib.ndpi_detection_giveup, module)
        self._guessed = ctypes.c_uint8()
        self._guessed_ref = ctypes.pointer(self._guessed)
        self._name_buffer = ctypes.create_string_buffer(_NAME_BUFFER)
        self._match_host = functools.partial(lib.ndpi_match_host_subprotocol, module)
        self._match_ref = ctypes.pointer(MatchResult())
        self._host_flow = self.new_flow()

    def new_flow(self) -> int:
        """A zeroed flow struct, as nDPI expects a new flow."""
        pointer = self._lib.ndpi_flow_malloc(self.flow_size)
        if not pointer:
            raise MemoryError("ndpi_flow_malloc() failed")
        ctypes.memset(pointer, 0, self.flow_size)
        return pointer

    def giveup(self, flow: int) -> tuple[NdpiProtocol, bool]:
        """nDPI's best answer for an undecided flow, and whether it is a guess."""
        found = self._giveup(flow, 1, self._guessed_ref)
        return found, bool(self._guessed.value)

    def confidence(self, flow: int) -> str:
        """How nDPI reached its detection of the flow."""
        value = ctypes.c_int.from_address(flow + _CONFIDENCE_OFFSET).value
        return CONFIDENCE[value] if 0 <= value < len(CONFIDENCE) else "unknown"

    def protocol_name(self, master: int, app: int) -> str:
        """nDPI's name of a detection, e.g. ``STUN.WhatsAppCall``."""
        found = NdpiProtocol(master, app, 0)
        name = self._lib.ndpi_protocol2name(self._module, found, self._name_buffer, _NAME_BUFFER)
        return name.decode("ascii", "replace") if name else "Unknown"

    def id_name(self, protocol: int) -> str:
        """nDPI's name of one protocol id."""
        name = self._lib.ndpi_get_proto_name(self._module, protocol)
        return name.decode("ascii", "replace") if name else "Unknown"

    def category_name(self, master: int, app: int, category: int) -> str:
        """The name of a detection's category.

        Some 4.2 dissectors (Skype's) return their detection without a category;
        the protocol's own category is then the one nDPI would report for it.
        """
        if not category and (master or app):
            category = self._lib.ndpi_get_proto_category(self._module, NdpiProtocol(master, app, 0))
        name = self._lib.ndpi_category_get_name(self._module, category)
        return name.decode("ascii", "replace") if name else "Unspecified"

    def match_address(self, ip: bytes) -> int:
        """The protocol whose published ranges hold ``ip``; 0 if none or not IPv4.

        ``struct in_addr`` is the four address bytes in network order, so the
        packed address itself is passed as the pointer.
        """
        if len(ip) != 4:
            return 0  # 4.2 keeps IPv4 ranges only
        if not self._module:
            raise UsageError("the nDPI classifier is closed")
        return self._lib.ndpi_network_ptree_match(self._module, ip)

    def match_host(self, name: bytes) -> int:
        """The protocol whose host-name rules take ``name`` (lower-case ASCII); 0 if none.

        nDPI matches a name for a flow, and writes its detection and category
        into it and reads them back on the next match, so the scratch flow is
        zeroed each time: every name is matched as if it were a new flow's first.
        """
        flow = self._host_flow
        ctypes.memset(flow, 0, self.flow_size)
        return self._match_host(flow, name, len(name), self._match_ref, _NO_MASTER)

    def close(self) -> None:
        if self._host_flow:
            self.free_flow(self._host_flow)
            self._host_flow = None
        if self._module:
            self._lib.ndpi_exit_detection_module(self._module)
            self._module = None
