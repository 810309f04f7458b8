"""Capture file readers: pcap and pcapng files to ``(ts_us, linktype, frame)`` records.

Strategy: the file is mapped into memory once and records are cut from it with
precompiled `struct.Struct` layouts; each frame is one slice. Timestamps are integer
microseconds since the Unix epoch, computed with integer arithmetic only, so a replay
gives the same times to the microsecond on every run.

Damaged files are normal in the field (captures cut short by a full disk, copies
truncated in transfer, bit rot). A damaged record never raises: it is counted in
`CaptureReader.corrupt_records`, reported once through ``on_warning`` with the file
name, byte offset and reason, and skipped. Only a file that cannot be opened or is not
a capture at all raises `CaptureFileError`, at open time.

pcap: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/
pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/

One file, over 600 lines: one reader of two formats. Both read one mapping,
give its pages back as they go, and report damage and recover from it the
same way (offset, reason, resynchronisation on plausible records), so they
share the reader's state; the compiled record loops are in `_cpcap.pyx`.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

from voiplog._extensions import compiled
from voiplog.errors import UsageError

__all__ = ["CaptureFileError", "CaptureReader", "open_capture"]

_PCAP_HEADER = 24
_PCAP_GLOBAL_LE = struct.Struct("<IHHiIII")
_PCAP_GLOBAL_BE = struct.Struct(">IHHiIII")
_PCAP_RECORD_LE = struct.Struct("<IIII")  # seconds, fraction, captured length, original length
_PCAP_RECORD_BE = struct.Struct(">IIII")
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
# Bits 28-31 of the pcap link type field say whether frames end with an FCS and how
# long it is, bits 16-27 are reserved; only the low 16 bits name the link type.
_PCAP_LINKTYPE_MASK = 0xFFFF

# Writers are known to record a snaplen smaller than the frames they then store (or
# 0), and libpcap reads such files, so the header's snaplen is not a hard limit. Any
# captured length up to this many bytes is accepted (Wireshark's standard maximum).
_CAPLEN_FLOOR = 262144
# After a damaged record header, a candidate header is believed only if its time is
# within this many seconds of the last good record.
_RESYNC_WINDOW_S = 86400

_NG_SHB = 0x0A0D0D0A
_NG_IDB = 0x00000001
_NG_OPB = 0x00000002
_NG_SPB = 0x00000003
_NG_NRB = 0x00000004
_NG_ISB = 0x00000005
_NG_EPB = 0x00000006
_NG_DSB = 0x0000000A
_NG_KNOWN_BLOCKS = (_NG_SHB, _NG_IDB, _NG_OPB, _NG_SPB, _NG_NRB, _NG_ISB, _NG_EPB, _NG_DSB)
_NG_BOM_LE = b"\x4d\x3c\x2b\x1a"
_NG_BOM_BE = b"\x1a\x2b\x3c\x4d"
_NG_OPT_TSRESOL = 9
_NG_OPT_TSOFFSET = 14

_GZIP_MAGIC = b"\x1f\x8b"
# Link type reported for an interface whose description block is too short to read.
_LINKTYPE_UNKNOWN = 0xFFFF
# Marker returned by the block parser when a section header starts a new section.
_NEW_SECTION = object()

# Pages of the mapping already read are released every this many bytes.
_RELEASE_EVERY = 1 << 20
_CAN_RELEASE = hasattr(mmap, "MADV_DONTNEED")

# Packet times a record can carry, in microseconds: from the epoch to the end of
# 9999, which records and the store can write. A pcap time always is; a pcapng
# block's beyond them (a wrong if_tsresol or if_tsoffset, or damage) is reported
# and skipped. `_cpcap.pyx` repeats the bound.
TS_LIMIT_US = 253_402_300_800_000_000

# The pcap and pcapng record loops compiled (`_cpcap.pyx`), or None: the reference
# loops `_pcap_records` and `_pcapng_records` run.
_cpcap = compiled("voiplog.capture._cpcap")


class _SectionLayout:
    """The pcapng block layouts in one byte order (each section chooses its own)."""

    __slots__ = ("block", "epb", "i64", "idb", "opb", "option", "shb", "spb", "u32")

    def __init__(self, order: str) -> None:
        self.u32 = struct.Struct(order + "I")
        self.i64 = struct.Struct(order + "q")
        self.block = struct.Struct(order + "II")  # type, total length
        # type, total length, interface, ts high, ts low, captured, original
        self.epb = struct.Struct(order + "IIIIIII")
        # type, total length, interface, drops, ts high, ts low, captured, original
        self.opb = struct.Struct(order + "IIHHIIII")
        self.spb = struct.Struct(order + "III")  # type, total length, original length
        self.idb = struct.Struct(order + "HHI")  # link type, reserved, snaplen
        # type, total length, byte-order magic, major, minor, section length
        self.shb = struct.Struct(order + "IIIHHq")
        self.option = struct.Struct(order + "HH")  # code, length


_NG_LE = _SectionLayout("<")
_NG_BE = _SectionLayout(">")


class CaptureFileError(UsageError):
    """A capture file that is missing, unreadable, or neither pcap nor pcapng."""


def open_capture(
    path: str | os.PathLike[str], on_warning: Callable[[str], None] | None = None
) -> CaptureReader:
    """Open a pcap or pcapng file (told apart by its first bytes) for reading.

    ``on_warning`` receives one line per damaged record that is skipped. Raises
    `CaptureFileError` naming the file if it cannot be read as a capture.
    """
    return CaptureReader(path, on_warning)


class CaptureReader:
    """Records of one capture file, in file order.

    Iterating yields ``(ts_us, linktype, frame)``; each iteration starts again at the
    first record and resets the counters. `size` and `bytes_read` drive a progress bar.
    """

    __slots__ = (
        "_buf",
        "_file",
        "_linktype",
        "_max_caplen",
        "_nanosecond",
        "_on_warning",
        "_pcap_record",
        "_released",
        "_scanner",
        "bytes_read",
        "corrupt_records",
        "format",
        "path",
        "size",
    )

    path: str
    """The file name as given, used in warnings and errors."""
    size: int
    """File size in bytes."""
    bytes_read: int
    """Bytes consumed so far (end of the last record yielded or skipped)."""
    corrupt_records: int
    """Damaged records counted and skipped so far."""
    format: str
    """``pcap``, ``pcap-ns`` (nanosecond pcap) or ``pcapng``."""

    def __init__(
        self, path: str | os.PathLike[str], on_warning: Callable[[str], None] | None = None
    ) -> None:
        self.path = os.fspath(path)
        self._on_warning = on_warning
        self.bytes_read = 0
        self.corrupt_records = 0
        self._released = 0
        self._scanner: Any = None  # the compiled record loop running, if any
        self._file: Any = None
        self._buf: Any = None
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for the mapping
            self._buf = _map(self._file)
        except OSError as exc:
            self.close()
            raise CaptureFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        self.size = len(self._buf)
        try:
            self._read_file_header()
        except CaptureFileError:
            self.close()
            raise

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; iterating afterwards yields nothing more."""
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            scanner.release()  # it holds the mapping, which cannot close under it
        buf, self._buf = self._buf, None
        if isinstance(buf, mmap.mmap):
            buf.close()
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        if self._buf is None:
            return iter(())
        self.bytes_read = 0
        self.corrupt_records = 0
        self._released = 0
        if self.format == "pcapng":
            return self._iter_pcapng()
        return self._iter_pcap()

    # --- file headers ---------------------------------------------------------------

    def _read_file_header(self) -> None:
        buf = self._buf
        head = bytes(buf[:4])
        if len(head) < 4:
            what = "empty file" if not head else f"only {len(head)} bytes"
            raise CaptureFileError(f"{self.path}: {what}, not a pcap or pcapng capture")
        if head == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
            self._check_first_section()
            return
        magic_le = int.from_bytes(head, "little")
        magic_be = int.from_bytes(head, "big")
        if magic_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            layout, self._pcap_record, magic = _PCAP_GLOBAL_LE, _PCAP_RECORD_LE, magic_le
        elif magic_be in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            layout, self._pcap_record, magic = _PCAP_GLOBAL_BE, _PCAP_RECORD_BE, magic_be
        else:
            raise CaptureFileError(f"{self.path}: {_describe_non_capture(head)}")
        if self.size < _PCAP_HEADER:
            raise CaptureFileError(
                f"{self.path}: pcap file header cut short ({self.size} of 24 bytes)"
            )
        _, _, _, _, _, snaplen, linktype_field = layout.unpack_from(buf, 0)
        self._nanosecond = magic == _PCAP_MAGIC_NS
        self.format = "pcap-ns" if self._nanosecond else "pcap"
        self._linktype = linktype_field & _PCAP_LINKTYPE_MASK
        self._max_caplen = max(snaplen, _CAPLEN_FLOOR)
        self.bytes_read = _PCAP_HEADER

    def _check_first_section(self) -> None:
        problem = _shb_problem(self._buf, 0, self.size)
        if problem:
            raise CaptureFileError(
                f"{self.path}: not a readable pcapng file: section header {problem}"
            )

    # --- pcap -------------------------------------------------------------------------

    def _iter_pcap(self) -> Iterator[tuple[int, int, bytes]]:
        if _cpcap is None:
            return self._iter_pcap_reference()
        if self._scanner is not None:
            self._scanner.release()
        self.bytes_read = _PCAP_HEADER
        self._scanner = _cpcap.PcapRecords(
            self,
            self._buf,
            _PCAP_HEADER,
            self.size,
            self._max_caplen,
            self._nanosecond,
            self._pcap_record is _PCAP_RECORD_LE,
            self._linktype,
            _RELEASE_EVERY,
        )
        return self._scanner

    def _iter_pcap_reference(self) -> Iterator[tuple[int, int, bytes]]:
        try:
            yield from self._pcap_records()
        except ValueError:
            # The mapping was closed under a running iteration: end it, as close() says.
            if self._buf is not None:
                raise

    def _pcap_records(self) -> Iterator[tuple[int, int, bytes]]:
        buf = self._buf
        end = self.size
        record = self._pcap_record.unpack_from
        linktype = self._linktype
        max_caplen = self._max_caplen
        nanosecond = self._nanosecond
        off = _PCAP_HEADER
        self.bytes_read = off
        last_sec = None
        release_at = _RELEASE_EVERY
        while off < end:
            if end - off >= 16:
                sec, frac, caplen, _ = record(buf, off)
                nxt = off + 16 + caplen
                if caplen <= max_caplen and nxt <= end:
                    self.bytes_read = nxt
                    last_sec = sec
                    if nxt > release_at:
                        release_at = self._release(off)
                    if nanosecond:
                        yield (sec * 1000000 + frac // 1000, linktype, buf[off + 16 : nxt])
                    else:
                        yield (sec * 1000000 + frac, linktype, buf[off + 16 : nxt])
                    off = nxt
                    continue
            off = self._pcap_recover(off, last_sec)
            if off is None:
                break
        self.bytes_read = end

    def _pcap_recover(self, off: int, last_sec: int | None) -> int | None:
        """Count and report the damaged record at ``off``; where to go on, or None to stop."""
        end = self.size
        self.corrupt_records += 1
        if end - off < 16:
            self._warn(
                f"record at byte {off}: file ends inside the record header "
                f"({end - off} of 16 bytes); stopped"
            )
            return None
        _, _, caplen, _ = self._pcap_record.unpack_from(self._buf, off)
        if caplen > self._max_caplen:
            reason = f"captured length {caplen} exceeds snaplen {self._max_caplen}"
        else:
            reason = f"captured length {caplen} runs past the end of the file"
        resume = self._pcap_resync(off + 1, last_sec)
        if resume is None:
            if caplen <= self._max_caplen:
                # Nothing plausible follows: this is the usual file cut short.
                self._warn(
                    f"record at byte {off}: truncated, file ends {off + 16 + caplen - end} "
                    f"bytes before the end of the {caplen}-byte frame; stopped"
                )
            else:
                self._warn(f"record at byte {off}: {reason}; no valid record follows; stopped")
            return None
        self._warn(f"record at byte {off}: {reason}; skipped {resume - off} bytes to byte {resume}")
        self.bytes_read = resume
        return resume

    def _pcap_resync(self, start: int, last_sec: int | None) -> int | None:
        """The offset of the next plausible record header at or after ``start``."""
        buf = self._buf
        end = self.size
        if last_sec is None:
            # No reference time: try every offset a damaged record of ordinary size
            # could span (a byte-by-byte scan, so bounded).
            for off in range(start, min(end - 15, start + _CAPLEN_FLOOR + 16)):
                if self._pcap_plausible_pair(off, None):
                    return off
            return None
        # The seconds field of a plausible header shares its upper 16 bits with a time
        # near the last good one: let the regex engine find those few candidates.
        little = self._pcap_record is _PCAP_RECORD_LE
        lo = max(last_sec - _RESYNC_WINDOW_S, 0) >> 16
        hi = min(last_sec + _RESYNC_WINDOW_S, 0xFFFFFFFF) >> 16
        highs = [h.to_bytes(2, "little" if little else "big") for h in range(lo, hi + 1)]
        pattern = re.compile(b"|".join(re.escape(h) for h in highs))
        shift = 2 if little else 0
        pos = start + shift
        while True:
            match = pattern.search(buf, pos)
            if match is None:
                return None
            off = match.start() - shift
            if off >= start and self._pcap_plausible_pair(off, last_sec):
                return off
            pos = match.start() + 1

    def _pcap_plausible_pair(self, off: int, ref_sec: int | None) -> bool:
        sec = self._pcap_plausible(off, ref_sec)
        if sec is None:
            return False
        nxt = off + 16 + self._pcap_record.unpack_from(self._buf, off)[2]
        return self.size - nxt < 16 or self._pcap_plausible(nxt, sec) is not None

    def _pcap_plausible(self, off: int, ref_sec: int | None) -> int | None:
        """The header's seconds if a sane record header sits at ``off``, else None."""
        if self.size - off < 16:
            return None
        sec, frac, caplen, origlen = self._pcap_record.unpack_from(self._buf, off)
        if frac >= (1000000000 if self._nanosecond else 1000000):
            return None
        # Empty records are legal but rare; runs of zero bytes would look like them.
        if not 0 < caplen <= origlen or caplen > self._max_caplen or off + 16 + caplen > self.size:
            return None
        if ref_sec is not None and abs(sec - ref_sec) > _RESYNC_WINDOW_S:
            return None
        return sec

    # --- pcapng -----------------------------------------------------------------------

    def _iter_pcapng(self) -> Iterator[tuple[int, int, bytes]]:
        if _cpcap is None:
            return self._iter_pcapng_reference()
        if self._scanner is not None:
            self._scanner.release()
        self._scanner = _cpcap.PcapngRecords(
            self, self._buf, self.size, _NG_LE, _NG_LE, _NEW_SECTION, _RELEASE_EVERY
        )
        return self._scanner

    def _iter_pcapng_reference(self) -> Iterator[tuple[int, int, bytes]]:
        try:
            yield from self._pcapng_records()
        except ValueError:
            if self._buf is not None:
                raise

    def _pcapng_records(self) -> Iterator[tuple[int, int, bytes]]:
        buf = self._buf
        end = self.size
        off = 0
        # Per section: byte order and interfaces. The section header at 0 sets them.
        layout = _NG_LE
        interfaces: list[tuple[int, int, int, int, int, int]] = []
        epb = layout.epb.unpack_from
        u32 = layout.u32.unpack_from
        ts = 0
        release_at = _RELEASE_EVERY
        while off < end:
            # The one reader of enhanced packet blocks: every well-formed one is
            # taken here; `_pcapng_block` says what is wrong with any other.
            if end - off >= 28:
                btype, blen, ifid, ts_high, ts_low, caplen, _ = epb(buf, off)
                nxt = off + blen
                if (
                    btype == _NG_EPB
                    and blen >= 32
                    and nxt <= end
                    and not blen & 3
                    and u32(buf, nxt - 4)[0] == blen
                    and ifid < len(interfaces)
                    and caplen <= blen - 32
                ):
                    linktype, mul, div, offset_us, _, high_ok = interfaces[ifid]
                    if div == 1:
                        t = (ts_high << 32 | ts_low) * mul + offset_us
                    else:
                        t = (ts_high << 32 | ts_low) * mul // div + offset_us
                    # Within bounds (else `_pcapng_block` says it is not): surely so
                    # by the time's high word, as almost every time is, else exactly.
                    if ts_high <= high_ok or 0 <= t < TS_LIMIT_US:
                        ts = t
                        self.bytes_read = nxt
                        if nxt > release_at:
                            release_at = self._release(off)
                        yield (ts, linktype, buf[off + 28 : off + 28 + caplen])
                        off = nxt
                        continue
            # Everything else: other blocks, a new section, damage.
            step = self._pcapng_block(off, layout, interfaces, ts)
            if step is None:
                break
            off, record, layout = step
            self.bytes_read = off
            if record is _NEW_SECTION:
                interfaces = []
                epb = layout.epb.unpack_from
                u32 = layout.u32.unpack_from
            elif record is not None:
                ts = record[0]
                yield record
        self.bytes_read = end

    def _pcapng_block(self, off: int, layout: _SectionLayout, interfaces: list, last_ts: int):
        """Handle the block at ``off`` other than a well-formed EPB.

        Returns ``(next_offset, record, layout)`` where the record is a
        ``(ts_us, linktype, frame)`` to yield, None, or `_NEW_SECTION` when a section
        header starts a new set of interfaces; or None to stop reading.
        """
        buf = self._buf
        end = self.size
        if buf[off : off + 4] == b"\x0a\x0d\x0d\x0a":
            problem = _shb_problem(buf, off, end)
            if problem:
                return self._pcapng_damaged(off, layout, f"section header {problem}")
            layout = _NG_LE if buf[off + 8 : off + 12] == _NG_BOM_LE else _NG_BE
            blen = layout.block.unpack_from(buf, off)[1]
            return off + blen, _NEW_SECTION, layout
        if end - off < 12:
            self.corrupt_records += 1
            self._warn(f"block at byte {off}: file ends inside a block header; stopped")
            return None
        btype, blen = layout.block.unpack_from(buf, off)
        nxt = off + blen
        if blen < 12 or blen & 3:
            return self._pcapng_damaged(off, layout, f"invalid block length {blen}")
        if nxt > end:
            resume = self._pcapng_resync(off + 1, layout)
            if resume is None:
                # Nothing valid follows: this is the usual file cut short.
                self.corrupt_records += 1
                self._warn(
                    f"block at byte {off}: truncated, file ends {nxt - end} bytes before the "
                    f"end of the {blen}-byte block; stopped"
                )
                return None
            reason = f"block length {blen} runs past the end of the file"
            return self._pcapng_resume(off, layout, reason, resume)
        if layout.u32.unpack_from(buf, nxt - 4)[0] != blen:
            return self._pcapng_damaged(
                off, layout, f"block length {blen} does not match the trailing length"
            )
        if btype == _NG_IDB:
            interfaces.append(self._pcapng_interface(off, blen, layout))
            return nxt, None, layout
        if btype == _NG_EPB:
            # Well framed, yet refused by the reader in `_pcapng_records`: say why.
            record = self._pcapng_epb_problem(off, blen, layout, interfaces)
        elif btype == _NG_SPB:
            record = self._pcapng_spb(off, blen, layout, interfaces, last_ts)
        elif btype == _NG_OPB:
            record = self._pcapng_opb(off, blen, layout, interfaces)
        else:
            # Name resolution, statistics, decryption secrets, custom blocks: not needed.
            return nxt, None, layout
        if record.__class__ is str:
            self.corrupt_records += 1
            self._warn(f"block at byte {off}: {record}; skipped")
            return nxt, None, layout
        return nxt, record, layout

    def _pcapng_damaged(self, off: int, layout: _SectionLayout, reason: str):
        return self._pcapng_resume(off, layout, reason, self._pcapng_resync(off + 1, layout))

    def _pcapng_resume(self, off: int, layout: _SectionLayout, reason: str, resume: int | None):
        """Count and report the damaged block at ``off``, then go on at ``resume``."""
        self.corrupt_records += 1
        if resume is None:
            self._warn(f"block at byte {off}: {reason}; no valid block follows; stopped")
            return None
        self._warn(f"block at byte {off}: {reason}; skipped {resume - off} bytes to byte {resume}")
        return resume, None, layout

    def _pcapng_resync(self, start: int, layout: _SectionLayout) -> int | None:
        """The offset of the next well-framed block of a known type after damage."""
        buf = self._buf
        end = self.size
        pattern = _NG_RESYNC_LE if layout is _NG_LE else _NG_RESYNC_BE
        pos = start
        while True:
            match = pattern.search(buf, pos)
            if match is None:
                return None
            off = match.start()
            if end - off >= 12:
                if buf[off : off + 4] == b"\x0a\x0d\x0d\x0a":
                    if not _shb_problem(buf, off, end):
                        return off
                else:
                    blen = layout.block.unpack_from(buf, off)[1]
                    if (
                        blen >= 12
                        and not blen & 3
                        and off + blen <= end
                        and layout.u32.unpack_from(buf, off + blen - 4)[0] == blen
                    ):
                        return off
            pos = off + 1

    def _pcapng_interface(
        self, off: int, blen: int, layout: _SectionLayout
    ) -> tuple[int, int, int, int, int, int]:
        """Parse an IDB to ``(linktype, mul, div, offset_us, snaplen, high_ok)``.

        A raw timestamp t converts to microseconds as ``t * mul // div + offset_us``.
        """
        buf = self._buf
        if blen < 20:
            self._warn(f"block at byte {off}: interface description too short; using defaults")
            return (_LINKTYPE_UNKNOWN, 1, 1, 0, 0, _high_ok(1, 1, 0))
        linktype, _, snaplen = layout.idb.unpack_from(buf, off + 8)
        tsresol = 6
        tsoffset = 0
        pos = off + 16
        limit = off + blen - 4
        while limit - pos >= 4:
            code, length = layout.option.unpack_from(buf, pos)
            pos += 4
            if code == 0:
                break
            if pos + length > limit:
                self._warn(f"block at byte {off}: interface option {code} runs past the block")
                break
            if code == _NG_OPT_TSRESOL and length >= 1:
                tsresol = buf[pos]
            elif code == _NG_OPT_TSOFFSET and length >= 8:
                tsoffset = layout.i64.unpack_from(buf, pos)[0]
            pos += (length + 3) & ~3
        # Ticks per second: 10**n, or 2**n when the high bit is set. Reduce the ratio
        # so that the common resolutions need one multiplication or one division.
        ticks = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
        common = math.gcd(ticks, 1000000)
        mul, div = 1000000 // common, ticks // common
        return (linktype, mul, div, tsoffset * 1000000, snaplen, _high_ok(mul, div, tsoffset))

    def _pcapng_epb_problem(
        self, off: int, blen: int, layout: _SectionLayout, interfaces: list
    ) -> str:
        if blen < 32:
            return f"enhanced packet block of {blen} bytes, needs 32"
        _, _, ifid, ts_high, ts_low, caplen, _ = layout.epb.unpack_from(self._buf, off)
        problem = _packet_problem(ifid, caplen, blen - 32, interfaces)
        if problem is None:
            problem = _time_problem(_pcapng_time(ts_high, ts_low, interfaces[ifid]))
        return problem or "unreadable packet block"

    def _pcapng_opb(self, off: int, blen: int, layout: _SectionLayout, interfaces: list):
        if blen < 32:
            return f"packet block of {blen} bytes, needs 32"
        _, _, ifid, _, ts_high, ts_low, caplen, _ = layout.opb.unpack_from(self._buf, off)
        return self._pcapng_record(off + 28, blen - 32, ifid, ts_high, ts_low, caplen, interfaces)

    def _pcapng_record(
        self,
        data: int,
        space: int,
        ifid: int,
        ts_high: int,
        ts_low: int,
        caplen: int,
        interfaces: list,
    ):
        problem = _packet_problem(ifid, caplen, space, interfaces)
        if problem is not None:
            return problem
        ts = _pcapng_time(ts_high, ts_low, interfaces[ifid])
        problem = _time_problem(ts)
        if problem is not None:
            return problem
        return (ts, interfaces[ifid][0], self._buf[data : data + caplen])

    def _pcapng_spb(
        self, off: int, blen: int, layout: _SectionLayout, interfaces: list, last_ts: int
    ):
        if blen < 16:
            return f"simple packet block of {blen} bytes, needs 16"
        if not interfaces:
            return "simple packet block before any interface description"
        origlen = layout.spb.unpack_from(self._buf, off)[2]
        linktype, _, _, _, snaplen, _ = interfaces[0]
        caplen = min(origlen, blen - 16)
        if snaplen:
            caplen = min(caplen, snaplen)
        # A simple packet block has no timestamp: reuse the last one seen, so that
        # packet time (the pipeline's clock) never jumps back to 1970.
        return (last_ts, linktype, self._buf[off + 12 : off + 12 + caplen])

    def _release(self, upto: int) -> int:
        """Drop the mapped pages before ``upto`` from memory; return the next mark.

        Frames are copied out of the mapping, so pages already read are never
        needed again; without this, pages of the file stay resident and the
        process grows with the capture instead of with the calls it tracks.
        """
        buf = self._buf
        if isinstance(buf, mmap.mmap) and _CAN_RELEASE:
            start = self._released
            stop = upto - upto % mmap.PAGESIZE
            if stop > start:
                buf.madvise(mmap.MADV_DONTNEED, start, stop - start)
                self._released = stop
        return upto + _RELEASE_EVERY

    def _warn(self, message: str) -> None:
        if self._on_warning is not None:
            self._on_warning(f"{self.path}: {message}")


# After damage, candidate block starts are the type codes of known blocks.
_NG_RESYNC_LE = re.compile(b"|".join(re.escape(t.to_bytes(4, "little")) for t in _NG_KNOWN_BLOCKS))
_NG_RESYNC_BE = re.compile(b"|".join(re.escape(t.to_bytes(4, "big")) for t in _NG_KNOWN_BLOCKS))


def _high_ok(mul: int, div: int, tsoffset: int) -> int:
    """The highest high word of a raw pcapng time (-1: none) below which an interface
    of these figures (time = raw * mul // div + tsoffset s) always gives a time
    within `TS_LIMIT_US`, whatever the low word: the reader needs no exact check."""
    offset_us = tsoffset * 1000000
    if offset_us < 0 or offset_us >= TS_LIMIT_US:
        return -1
    # The largest raw time whose product stays under the room left by the offset.
    raw = ((TS_LIMIT_US - offset_us) * div - 1) // mul
    return min((raw + 1 >> 32) - 1, 0xFFFFFFFF)


def _pcapng_time(ts_high: int, ts_low: int, interface: tuple) -> int:
    """A packet block's raw time in microseconds, by its interface's figures."""
    _, mul, div, offset_us, _, _ = interface
    return (ts_high << 32 | ts_low) * mul // div + offset_us


def _time_problem(ts: int) -> str | None:
    """What makes a packet time (µs) unusable: out of `TS_LIMIT_US`'s bounds (a
    wrong `if_tsresol` or `if_tsoffset`, or damage), if it is."""
    if 0 <= ts < TS_LIMIT_US:
        return None
    return f"packet time {ts} us is outside 1970-01-01 to 9999-12-31"


def _packet_problem(ifid: int, caplen: int, space: int, interfaces: list) -> str | None:
    """What makes a packet block's interface or captured length unusable, if anything."""
    if ifid >= len(interfaces):
        return f"interface {ifid} not described in this section ({len(interfaces)} are)"
    if caplen > space:
        return f"captured length {caplen} exceeds the {space} bytes of the block"
    return None


def _map(file: Any) -> Any:
    """Map the whole file read-only; fall back to reading it for pipes and the like."""
    try:
        size = os.fstat(file.fileno()).st_size
        if size:
            buf = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                buf.madvise(mmap.MADV_SEQUENTIAL)
            return buf
    except (ValueError, OSError):
        pass
    return file.read()


def _shb_problem(buf: Any, off: int, end: int) -> str | None:
    """Why the section header block at ``off`` cannot be used, or None if it can."""
    if end - off < 28:
        return f"cut short ({end - off} of at least 28 bytes)"
    bom = bytes(buf[off + 8 : off + 12])
    if bom == _NG_BOM_LE:
        layout = _NG_LE
    elif bom == _NG_BOM_BE:
        layout = _NG_BE
    else:
        return "has no valid byte-order magic"
    _, blen, _, major, minor, _ = layout.shb.unpack_from(buf, off)
    if blen < 28 or blen & 3:
        return f"has invalid length {blen}"
    if off + blen > end:
        return "runs past the end of the file"
    if layout.u32.unpack_from(buf, off + blen - 4)[0] != blen:
        return "has mismatched block lengths"
    if major != 1:
        return f"has unsupported version {major}.{minor}"
    return None


def _describe_non_capture(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip-compressed; decompress it first"
    if int.from_bytes(head, "little") in (0xA1B2CD34, 0x34CDB2A1):
        return "modified (Kuznetsov) pcap format is not supported"
    return f"not a pcap or pcapng capture (starts with {head.hex(' ')})"
