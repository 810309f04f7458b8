"""The Prometheus endpoint serves the latest snapshot the main loop published."""

from __future__ import annotations

import urllib.request

import pytest

from voiplog.daemon.metrics import MetricsServer, Snapshot
from voiplog.errors import UsageError


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_snapshot_served():
    server = MetricsServer("127.0.0.1:0")
    try:
        assert scrape(server.port)["voiplog_packets_total"] == 0
        server.publish(
            Snapshot(
                packets=10, bytes=2000, sip_messages=4, records=2, open_calls=3,
                spool_depth=7, store_latency_s=0.25,
                parse_errors={"sip.bad_start_line": 1},
                dispositions={"answered": 2},
                interfaces={"eth0": (100, 5, 9, 1)},
                records_capture_loss=1,
                app_classifier_packets=42, app_calls_without_media=2,
            )
        )  # fmt: skip
        values = scrape(server.port)
    finally:
        server.close()
    assert values["voiplog_packets_total"] == 10
    assert values["voiplog_bytes_total"] == 2000
    assert values["voiplog_sip_messages_total"] == 4
    assert values["voiplog_records_total"] == 2
    assert values["voiplog_open_calls"] == 3
    assert values["voiplog_spool_depth"] == 7
    assert values["voiplog_store_latency_seconds"] == 0.25
    assert values['voiplog_parse_errors_total{kind="sip.bad_start_line"}'] == 1
    assert values['voiplog_records_by_disposition_total{disposition="answered"}'] == 2
    assert values['voiplog_capture_received_packets_total{interface="eth0"}'] == 100
    assert values['voiplog_capture_drops_total{interface="eth0",where="ring"}'] == 5
    assert values['voiplog_capture_drops_total{interface="eth0",where="interface"}'] == 1
    assert values['voiplog_interface_rx_dropped_total{interface="eth0"}'] == 9
    assert values["voiplog_records_capture_loss_total"] == 1
    assert values["voiplog_app_classifier_packets_total"] == 42
    assert values["voiplog_app_calls_without_media_total"] == 2


def test_address_in_use_names_the_key():
    first = MetricsServer("127.0.0.1:0")
    try:
        with pytest.raises(UsageError, match=r"metrics\.address: cannot listen on"):
            MetricsServer(f"127.0.0.1:{first.port}")
    finally:
        first.close()


def test_hep_counters_are_served():
    server = MetricsServer("127.0.0.1:0")
    try:
        server.publish(
            Snapshot(
                hep_messages={"sip": 12, "rtcp": 3},
                hep_refused={"hep.bad_auth_key": 2, "hep.connection_refused": 1},
            )
        )
        values = scrape(server.port)
    finally:
        server.close()
    assert values['voiplog_hep_messages_total{payload="sip"}'] == 12
    assert values['voiplog_hep_messages_total{payload="rtcp"}'] == 3
    assert values['voiplog_hep_refused_total{kind="hep.bad_auth_key"}'] == 2
    assert values['voiplog_hep_refused_total{kind="hep.connection_refused"}'] == 1
