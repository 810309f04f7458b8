"""The spool's full-disk alarm as the daemon publishes it: metrics and the status line."""

from __future__ import annotations

from types import SimpleNamespace

from tests.daemon.test_metrics import scrape
from voiplog.daemon.metrics import MetricsServer, Snapshot
from voiplog.daemon.service import Daemon
from voiplog.sinks import RecordSinks


def test_the_full_disk_alarm_is_served():
    server = MetricsServer("127.0.0.1:0")
    try:
        server.publish(Snapshot(spool_disk_full=1, spool_in_memory=42, spool_records_lost=3))
        values = scrape(server.port)
    finally:
        server.close()
    assert values["voiplog_spool_disk_full"] == 1
    assert values["voiplog_spool_in_memory"] == 42
    assert values["voiplog_spool_records_lost_total"] == 3


def test_the_status_line_says_the_spool_disk_is_full():
    spool = SimpleNamespace(records_in_memory=42, disk_full_since=1.0, records_lost=3)
    sinks = RecordSinks()
    sinks.writer = SimpleNamespace(spool=spool, records_put=50, records_stored=8, last_batch_s=0.0, records_conflicting=0)  # fmt: skip
    daemon = Daemon.__new__(Daemon)  # only what the status line reads
    daemon._sinks = sinks
    daemon.capture = None
    daemon.pipeline = SimpleNamespace(
        stats=SimpleNamespace(packets=10, records=50), tracker=SimpleNamespace(open_calls=2)
    )
    line = daemon._status_line(2.0, (1.0, 0))
    assert line == (
        "10 packets/s, 2 calls open, 50 records, 0 packets dropped; "
        "SPOOL DISK FULL: 42 records in memory, 3 lost"
    )
