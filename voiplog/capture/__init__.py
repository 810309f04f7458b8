"""Packet sources: capture files (pcap, pcapng) yielding ``(ts_us, linktype, frame)``."""

from voiplog.capture.files import CaptureFileError, CaptureReader, open_capture

__all__ = ["CaptureFileError", "CaptureReader", "open_capture"]
