"""The live daemon behind `voiplog run`: capture, pipeline, records, systemd, metrics."""

from voiplog.daemon.service import Daemon, DaemonOptions

__all__ = ["Daemon", "DaemonOptions"]
