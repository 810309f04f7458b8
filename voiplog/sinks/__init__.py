"""Where call-detail records go."""

from voiplog.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink"]
