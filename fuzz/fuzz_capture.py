"""Invariant: any file opens as a capture or raises CaptureFileError, and reading it never raises: damaged records are counted and skipped; memory stays bounded."""

from __future__ import annotations

import os
import tempfile

import atheris

from fuzz._common import ROOT, fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.capture import CaptureFileError, open_capture

_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
_FD, _PATH = tempfile.mkstemp(prefix="voiplog-fuzz-", suffix=".pcap", dir=_DIR)
os.close(_FD)


def seeds():
    from tests.pcapwriter import pcap_bytes, pcapng_section
    from tests.sipcraft import T0, make_dialog, sorted_frames

    d = make_dialog(1)
    d.basic_answered(T0, talk_s=0.1)
    frames = sorted_frames(d)[:8]
    yield pcap_bytes(frames)
    yield pcap_bytes(frames, nanosecond=True, big_endian=True)
    yield pcapng_section([(1, None), (101, 9)], [(0, ts, f) for ts, f in frames[:4]])
    yield (ROOT / "voiplog" / "data" / "sample-calls.pcap").read_bytes()[:20000]


def test_one(data: bytes) -> None:
    with open(_PATH, "wb") as file:
        file.write(data)
    try:
        reader = open_capture(_PATH)
    except CaptureFileError:
        return
    with reader:
        for _ts, _linktype, frame in reader:
            if len(frame) > len(data):
                raise AssertionError("frame longer than the file")


if __name__ == "__main__":
    try:
        fuzz_main(test_one, seeds)
    finally:
        os.unlink(_PATH)
