"""The Prometheus endpoint: what the daemon saw, served from a snapshot.

The main loop publishes a fresh `Snapshot` about once a second; the HTTP server
thread of prometheus-client only ever reads the latest one (one reference swap),
so scraping never touches the pipeline's live counters from another thread.

Spool depth, store latency and the spool's alarms come from the record sinks'
``metrics()`` (see `voiplog.sinks.RecordSink`), asked once a second; without a
store they read 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voiplog.errors import UsageError


@dataclass(frozen=True)
class Snapshot:
    packets: int = 0
    bytes: int = 0
    sip_messages: int = 0
    rtp_packets: int = 0
    records: int = 0
    open_calls: int = 0
    spool_depth: int = 0
    store_latency_s: float = 0.0
    parse_errors: dict[str, int] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)
    # by interface: (received, dropped, interface rx_dropped, interface rx_missed)
    interfaces: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    records_capture_loss: int = 0
    app_classifier_packets: int = 0
    app_calls_without_media: int = 0
    store_record_conflicts: int = 0
    spool_in_memory: int = 0  # records waiting in memory: the spool's file system is full
    spool_disk_full: int = 0
    spool_records_lost: int = 0
    # HEP: the messages taken, by payload type ("sip", "rtcp", "json"...), and
    # what was refused or dropped, by kind ("hep.bad_auth_key", "hep.flood"...).
    hep_messages: dict[str, int] = field(default_factory=dict)
    hep_refused: dict[str, int] = field(default_factory=dict)


class _Collector:
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.snapshot

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield counter("voiplog_packets", "Packets read by the pipeline.", s.packets)
        yield counter("voiplog_bytes", "Captured bytes read by the pipeline.", s.bytes)
        yield counter("voiplog_sip_messages", "SIP messages parsed.", s.sip_messages)
        yield counter("voiplog_rtp_packets", "RTP packets attached to calls.", s.rtp_packets)
        yield counter("voiplog_records", "Call-detail records written.", s.records)
        yield counter(
            "voiplog_records_capture_loss",
            "Records flagged capture_loss.",
            s.records_capture_loss,
        )
        yield counter(
            "voiplog_app_classifier_packets",
            "Datagrams handed to the application classifier (nDPI).",
            s.app_classifier_packets,
        )
        yield counter(
            "voiplog_app_calls_without_media",
            "Calls of call applications that carried no media (unanswered), not written.",
            s.app_calls_without_media,
        )
        yield counter(
            "voiplog_store_record_conflicts",
            "Records that arrived under a stored key with other content (kept in record_conflict).",
            s.store_record_conflicts,
        )
        yield counter(
            "voiplog_spool_records_lost",
            "Records lost: the spool's file system and its memory reserve were full.",
            s.spool_records_lost,
        )
        yield GaugeMetricFamily(
            "voiplog_spool_disk_full",
            "1 while the spool's file system is full (records wait in memory).",
            value=s.spool_disk_full,
        )
        yield GaugeMetricFamily(
            "voiplog_spool_in_memory",
            "Records waiting in memory for room on the spool's file system.",
            value=s.spool_in_memory,
        )
        errors = CounterMetricFamily(
            "voiplog_parse_errors", "Unreadable packets, by kind.", labels=["kind"]
        )
        for kind, count in sorted(s.parse_errors.items()):
            errors.add_metric([kind], count)
        yield errors
        dispositions = CounterMetricFamily(
            "voiplog_records_by_disposition", "Records by disposition.", labels=["disposition"]
        )
        for kind, count in sorted(s.dispositions.items()):
            dispositions.add_metric([kind], count)
        yield dispositions
        hep = CounterMetricFamily(
            "voiplog_hep_messages", "HEP messages taken, by payload type.", labels=["payload"]
        )
        for kind, count in sorted(s.hep_messages.items()):
            hep.add_metric([kind], count)
        yield hep
        hep_refused = CounterMetricFamily(
            "voiplog_hep_refused",
            "HEP packets and connections refused or dropped (wrong key, unknown node, "
            "flood, receive errors...), by kind; unreadable ones are parse errors.",
            labels=["kind"],
        )
        for kind, count in sorted(s.hep_refused.items()):
            hep_refused.add_metric([kind], count)
        yield hep_refused
        yield GaugeMetricFamily("voiplog_open_calls", "Calls being tracked.", value=s.open_calls)
        yield GaugeMetricFamily(
            "voiplog_spool_depth", "Records waiting in the local spool.", value=s.spool_depth
        )
        yield GaugeMetricFamily(
            "voiplog_store_latency_seconds",
            "Latency of the last write to the store.",
            value=s.store_latency_s,
        )
        received = CounterMetricFamily(
            "voiplog_capture_received_packets",
            "Packets the kernel filter passed to the capture ring.",
            labels=["interface"],
        )
        dropped = CounterMetricFamily(
            "voiplog_capture_drops",
            "Packets lost: 'ring' had no room in the capture ring, 'interface' were missed "
            "by the network interface.",
            labels=["interface", "where"],
        )
        if_dropped = CounterMetricFamily(
            "voiplog_interface_rx_dropped",
            "The interface's rx_dropped counter since capture started (includes packets "
            "the host stack discarded, not only capture loss).",
            labels=["interface"],
        )
        for name, (rx, drops, rx_dropped, missed) in sorted(s.interfaces.items()):
            received.add_metric([name], rx)
            dropped.add_metric([name, "ring"], drops)
            dropped.add_metric([name, "interface"], missed)
            if_dropped.add_metric([name], rx_dropped)
        yield received
        yield dropped
        yield if_dropped


class MetricsServer:
    """Serves the latest snapshot on `address` ("host:port"); `publish` replaces it."""

    def __init__(self, address: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        host, _, port = address.rpartition(":")
        self._collector = _Collector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._collector)
        try:
            self._server, self._thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            raise UsageError(
                f"metrics.address: cannot listen on {address}: {exc.strerror}"
            ) from None
        self.port = self._server.server_port

    def publish(self, snapshot: Snapshot) -> None:
        self._collector.snapshot = snapshot

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
