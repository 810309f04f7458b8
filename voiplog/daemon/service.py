"""The daemon's main loop: live frames through the pipeline, records out, systemd told.

Strategy: one thread does everything that touches the pipeline. Each turn of
the loop reads the capture rings (waiting at most `_POLL_S` when idle), feeds
the pipeline, reads the socket drop counters, and once a second reads the
interface counters, publishes metrics, answers the watchdog and, when no packet
came, expires idle calls on wall-clock time (packets expire them on their own
time otherwise, as in replay). Because the watchdog is answered from this loop, a stuck
pipeline stops the pings and systemd restarts the service.

Signals only set flags (and wake the poll through a pipe): SIGTERM/SIGINT stop
the loop, SIGHUP reloads the configuration between two batches, so no packet is
lost: the rings keep filling while the file is read.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from voiplog import _collector
from voiplog.apps import open_app_classifier
from voiplog.calls import EndReason
from voiplog.capture.bpf import LINKTYPE_ETHERNET, Program, build_filter, compile_expression, either
from voiplog.capture.live import LiveCapture, RingSettings
from voiplog.cdr import CallRecord
from voiplog.daemon import callstate
from voiplog.daemon.loss import FLAG, LossIntervals
from voiplog.daemon.notify import Notifier
from voiplog.pipeline import Pipeline
from voiplog.sinks import RecordSink
from voiplog.wiring import build_pipeline, pipeline_parts, subscriber_networks

log = logging.getLogger("voiplog.run")

_POLL_S = 0.2
_TICK_S = 1.0
# Stop draining the rings at shutdown after this long, to stay well inside
# systemd's stop timeout.
_SHUTDOWN_DRAIN_S = 1.0


def filter_factory(cfg) -> Callable[[int], Program]:
    """`linktype -> BPF program` for the capture section of a POP config.

    Raises `voiplog.capture.bpf.FilterError` for an extra expression that does not compile.
    """
    capture = cfg.capture
    extra: dict[int, Program] = {}
    if capture.extra_filter:
        for linktype in (LINKTYPE_ETHERNET, 101):
            extra[linktype] = compile_expression(
                capture.extra_filter, linktype=linktype, snaplen=capture.snaplen
            )

    # App-call media often shows no RTP header at a fixed offset: let the
    # flows the application classifier needs through unless told otherwise.
    app_calls = capture.app_call_filter or (
        "signatures" if cfg.media_sessions.app_classifier != "off" else "off"
    )

    def filter_for(linktype: int) -> Program:
        program = build_filter(
            link_header=14 if linktype == LINKTYPE_ETHERNET else 0,
            sip_ports=cfg.sip.ports,
            udp_ports=capture.udp_ports,
            tcp_ports=capture.tcp_ports,
            snaplen=capture.snaplen,
            app_calls=app_calls,
            udp_drop_ports=capture.udp_drop_ports,
        )
        return either(program, extra[linktype]) if linktype in extra else program

    return filter_for


def ring_settings(cfg) -> RingSettings:
    capture = cfg.capture
    return RingSettings(
        snaplen=capture.snaplen,
        ring_bytes=capture.ring_mb << 20,
        block_bytes=capture.block_kb << 10,
        block_timeout_ms=capture.block_timeout_ms,
        promiscuous=capture.promiscuous,
    )


def _open_hep_listener(cfg, pipeline: Pipeline):
    """The HEP listener of a config's [hep] listen addresses; raises HepListenError."""
    from voiplog.capture.hep_listen import HepListener
    from voiplog.config import parse_listen_address

    weird = pipeline.stats.weird

    def count(kind: str) -> None:
        weird[kind] += 1

    addresses = [parse_listen_address(a) for a in cfg.hep.listen]
    # HEP the listener receives is not read a second time from a capture interface.
    received = {port for _, _, port in addresses}
    pipeline.hep_ports = pipeline.hep_ports - received
    return HepListener(addresses, count)


class _SubscriberLookup:
    """The subscriber-network lookup, swappable on reload without touching the tracker."""

    __slots__ = ("target",)

    def __init__(self, target) -> None:
        self.target = target

    def __call__(self, caller_ip: str, callee_ip: str):
        return self.target(caller_ip, callee_ip)


@dataclass
class DaemonOptions:
    interfaces: list[str]
    config_path: str | None = None
    # Re-reads the configuration for SIGHUP; raises ConfigError when invalid.
    load_config: Callable[[], object] | None = None
    follow_config_log_level: bool = True
    environ: dict[str, str] | None = None


class Daemon:
    """Runs until SIGTERM/SIGINT (or `stop()`); `run` returns the exit code."""

    def __init__(self, cfg, options: DaemonOptions, sinks: RecordSink) -> None:
        self.cfg = cfg
        self.options = options
        self._sinks = sinks
        self.loss = LossIntervals()
        self.loss_records = 0
        self._stop = False
        self._reload = False
        self.notifier = Notifier(options.environ)
        # WiringError (a source that cannot be read) goes to the caller: `voiplog
        # run` says it and exits 2.
        parts = pipeline_parts(cfg)
        # Even with no subscriber networks: a reload may add some.
        self._subscriber_lookup = _SubscriberLookup(subscriber_networks(cfg).lookup_subscriber)
        self.apps = open_app_classifier(parts.flow_settings)
        if self.apps.warning:
            log.warning("%s", self.apps.warning)
        self.pipeline = build_pipeline(
            parts,
            self._emit,
            apps=self.apps.classifier,
            lookup_subscriber=self._subscriber_lookup,
            on_parse_error=self._parse_error,
        )
        self.capture: LiveCapture | None = None
        self.hep = None  # voiplog.capture.hep_listen.HepListener, with [hep] listen
        self.metrics = None
        self._last_counters: list = []
        # Where open calls are saved at a stop and read back at start (None: they
        # are written at the stop, flagged `shutdown`).
        self.state_path = callstate.state_path(cfg) if cfg.daemon.resume_calls else None
        # The uids of records written since the state was saved, and those the
        # run before wrote after its last saved state (their copies are dropped).
        self.written: callstate.WrittenLog | None = None
        self._written_before: set[str] = set()
        self.duplicates_dropped = 0

    # -- records ----------------------------------------------------------------

    def _emit(self, record: CallRecord) -> None:
        if record.uid in self._written_before:
            # Written by the run before, after the state it saved: this copy
            # comes from that state (the call ended after the checkpoint).
            self._written_before.discard(record.uid)
            self.duplicates_dropped += 1
            log.info("record %s was written before the restart; its copy is dropped", record.uid)
            return
        record = self.loss.mark(record, time.time_ns() // 1000)
        if FLAG in record.flags:
            self.loss_records += 1
        self._sinks.write(record)
        if self.written is not None:
            self.written.note(record.uid)

    @staticmethod
    def _parse_error(number: int, error: Exception) -> None:
        log.debug("packet %d: %s: %s", number, getattr(error, "kind", "error"), error)

    # -- signals ----------------------------------------------------------------

    def stop(self, *_: object) -> None:
        self._stop = True

    def request_reload(self, *_: object) -> None:
        self._reload = True

    def _install_signals(self) -> int:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe = (read_fd, write_fd)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        return read_fd

    def _restore_signals(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        for fd in self._pipe:
            os.close(fd)

    # -- lifecycle --------------------------------------------------------------

    def open(self) -> None:
        """Open capture and metrics; raises CaptureError / UsageError / FilterError."""
        wake_fd = self._install_signals()
        try:
            self.capture = LiveCapture(
                self.options.interfaces,
                ring_settings(self.cfg),
                filter_factory(self.cfg),
                wakeup_fd=wake_fd,
            )
            if self.cfg.hep.listen:
                self.hep = _open_hep_listener(self.cfg, self.pipeline)
            if self.cfg.metrics.address:
                from voiplog.daemon.metrics import MetricsServer

                self.metrics = MetricsServer(self.cfg.metrics.address)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.capture is not None:
            self.capture.close()
            self.capture = None
        if self.hep is not None:
            self.hep.close()
            self.hep = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if hasattr(self, "_pipe"):
            self._restore_signals()
            del self._pipe
        self.notifier.close()

    def run(self) -> int:
        capture = self.capture
        assert capture is not None, "open() first"
        pipeline = self.pipeline
        notifier = self.notifier
        watchdog_every = notifier.watchdog_interval_s if self.cfg.daemon.watchdog else None
        names = ", ".join(self.options.interfaces) or "no interface (HEP only)"
        log.info("capturing on %s", names)
        notifier.ready(f"capturing on {names}")
        now = time.monotonic()
        next_tick = now + _TICK_S
        next_status = now + self.cfg.daemon.status_interval_s
        next_watchdog = now
        last_check_us = time.time_ns() // 1000
        rate_base = (now, 0)
        idle_lag_us = 2 * self.cfg.capture.block_timeout_ms * 1000
        hep = self.hep
        if hep is not None:
            log.info("receiving HEP on %s", ", ".join(hep.addresses()))
        self._resume()
        _collector.tune()
        next_checkpoint = now + self.cfg.daemon.checkpoint_interval_s
        while not self._stop:
            if hep is not None:
                capture.watch(hep.fds())
            frames = capture.read(_POLL_S)
            if frames:
                pipeline.feed(frames)
            if hep is not None:
                packets = hep.read()
                if packets:
                    pipeline.feed_hep(packets)
                    frames = frames or packets  # not idle: no wall-clock expiry
            # Socket drop counters every turn: the interval a drop is pinned to stays
            # short, so few records are flagged that did not need to be.
            now_us = time.time_ns() // 1000
            tick = time.monotonic() >= next_tick
            drops = sum(capture.update_counters(interface=tick).values())
            if drops:
                self.loss.add(last_check_us, now_us, drops)
                log.warning("capture lost %d packets (kernel ring or interface)", drops)
            last_check_us = now_us
            if self._reload:
                self._reload = False
                self.reload()
            now = time.monotonic()
            if tick:
                next_tick = now + _TICK_S
                if not frames:
                    # Idle: the wall clock stands in for packet time. It runs behind
                    # by the longest a packet can wait in a block not yet handed
                    # over, so no call is closed with its next packet still queued.
                    # While packets flow, `feed` expires on their time instead.
                    pipeline.expire(now_us - idle_lag_us)
                self._flush_sinks()
                self._publish()
                if self.state_path is not None and now >= next_checkpoint:
                    next_checkpoint = now + self.cfg.daemon.checkpoint_interval_s
                    self._save_calls(self._snapshot(), now_us)
            if watchdog_every is not None and now >= next_watchdog:
                notifier.watchdog()
                next_watchdog = now + watchdog_every
            if now >= next_status:
                next_status = now + self.cfg.daemon.status_interval_s
                status = self._status_line(now, rate_base)
                rate_base = (now, pipeline.stats.packets)
                notifier.status(status)
                log.info("%s", status)
        self._shutdown()
        return 0

    def _shutdown(self) -> None:
        notifier = self.notifier
        notifier.stopping("stopping: closing open calls")
        log.info(
            "stopping: draining capture, closing %d open calls", self.pipeline.tracker.open_calls
        )
        capture = self.capture
        deadline = time.monotonic() + _SHUTDOWN_DRAIN_S
        wait = self.cfg.capture.block_timeout_ms / 1000 * 2
        while time.monotonic() < deadline:
            frames = capture.read(wait)
            if not frames:
                break
            self.pipeline.feed(frames)
        if self.hep is not None:
            self.pipeline.feed_hep(self.hep.read())
            self.hep.close()
            self.hep = None
        now_us = time.time_ns() // 1000
        drops = sum(capture.update_counters().values())
        self.loss.add(now_us - 1, now_us, drops)
        self._last_counters = capture.counters
        capture.close()
        self.capture = None
        self.pipeline.expire(now_us)
        if self.state_path is None:
            self.pipeline.finish(EndReason.SHUTDOWN)
        else:
            state = self.pipeline.suspend(EndReason.SHUTDOWN)
            self._flush_sinks()  # the records written until now are on disk
            if not self._save_calls(state, now_us, stopping=True):
                self.pipeline.finish(EndReason.SHUTDOWN)
        if self.written is not None:
            self.written.close()
            self.written = None
        if self.apps.classifier is not None:
            self.apps.classifier.close()
        self._publish()
        for c in self._last_counters:
            log.info(
                "capture on %s: %d packets received, %d dropped in the ring, "
                "%d missed by the interface",
                c.name,
                c.received,
                c.dropped,
                c.if_rx_missed,
            )
        log.info("stopped: %d records written", self.pipeline.stats.records)

    # -- open calls across a restart ---------------------------------------------

    def _snapshot(self) -> dict:
        """The tracker's snapshot, taken with the cyclic collector paused: it makes a
        container per field of every call, and the collections that would trigger,
        each walking the whole heap, took two thirds of the time (5,000 calls)."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self.pipeline.snapshot()
        finally:
            if enabled:
                gc.enable()

    def _save_calls(self, calls: dict, now_us: int, stopping: bool = False) -> bool:
        """Save a tracker snapshot (at a checkpoint, or at the stop); False if it failed."""
        path = self.state_path
        try:
            size = callstate.save(path, callstate.config_hash(self.cfg), now_us, calls)
        except OSError as exc:
            log.error("open calls not saved to %s: %s", path, exc.strerror or exc)
            if stopping:
                # An older checkpoint must not bring back calls written at this stop.
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            return False
        if self.written is not None:
            # The records written until now are not in this state: only the
            # copies still awaited from the run before matter.
            try:
                self.written.restart(self._written_before)
            except OSError as exc:
                log.error("cannot restart %s: %s", self.written.path, exc)
        if stopping:
            log.info(
                "saved %d open calls, %d REGISTER chains and %d media sessions to %s (%d bytes)",
                len(calls["calls"]),
                len(calls["registrations"]),
                len((calls.get("media_sessions") or {}).get("sessions", ())),
                path,
                size,
            )
        return True

    def _resume(self) -> None:
        """Go on with the calls saved by the last run; the gap since is flagged on them."""
        path = self.state_path
        if path is None:
            return
        now_us = time.time_ns() // 1000
        written = callstate.written_path(path)
        try:
            self.written = callstate.WrittenLog(written)
        except callstate.StateError as exc:
            # Another daemon of this POP runs on this state: leave it to that one.
            log.error("%s; this run neither resumes nor saves open calls", exc)
            self.state_path = None
            return
        except OSError as exc:
            log.error("%s cannot be opened (%s): a call ended after a checkpoint may be "
                      "written twice after a crash", written, exc.strerror or exc)  # fmt: skip
        try:
            loaded = callstate.load(path, callstate.config_hash(self.cfg))
            if loaded is None:
                return
            saved_us, calls = loaded
            count, sessions = self.pipeline.restore(calls, (saved_us, now_us))
        except (callstate.StateError, ValueError) as exc:
            try:
                aside = callstate.set_aside(path, now_us)
            except OSError as move:
                log.error("open calls not resumed: %s (and not set aside: %s)", exc, move)
                return
            log.error("open calls not resumed: %s; the state is kept as %s", exc, aside)
            return
        log.info(
            "resumed %d open calls, %d REGISTER chains and %d media sessions saved %.1f s ago",
            count,
            len(calls["registrations"]),
            sessions,
            (now_us - saved_us) / 1e6,
        )
        if self.written is not None and self.written.before:
            # Records this state's calls made after it was saved (before a crash).
            self._written_before = set(self.written.before)
            log.info(
                "%d records were written after that state was saved: their copies "
                "from it will be dropped",
                len(self._written_before),
            )

    # -- reload -----------------------------------------------------------------

    def reload(self) -> None:
        """Apply what can change while running; the rest waits for a restart."""
        loader = self.options.load_config
        if loader is None:
            return
        self.notifier.reloading()
        try:
            new = loader()
        except Exception as exc:  # a bad file must not stop a running capture
            log.error("reload: configuration not changed: %s", exc)
            self.notifier.send(
                "READY=1", "STATUS=reload failed; running with the old configuration"
            )
            return
        old = self.cfg
        if self.options.follow_config_log_level:
            logging.getLogger().setLevel(new.daemon.log_level.upper())
        self._subscriber_lookup.target = subscriber_networks(new).lookup_subscriber
        self.pipeline.tracker.settings = new.calls.settings()
        filter_changed = (
            new.sip.ports != old.sip.ports
            or new.capture.udp_ports != old.capture.udp_ports
            or new.capture.tcp_ports != old.capture.tcp_ports
            or new.capture.extra_filter != old.capture.extra_filter
            or new.capture.app_call_filter != old.capture.app_call_filter
            or new.capture.udp_drop_ports != old.capture.udp_drop_ports
            or new.media_sessions.app_classifier != old.media_sessions.app_classifier
        )
        if filter_changed and self.capture is not None:
            try:
                self.capture.set_filter(filter_factory(new))
            except Exception as exc:
                log.error("reload: capture filter not changed: %s", exc)
                new = new.model_copy(update={"capture": old.capture, "sip": old.sip})
        self.pipeline.sip_ports = frozenset(new.sip.ports)
        for section in ("interfaces", "snaplen", "promiscuous", "ring_mb", "block_kb"):
            if getattr(new.capture, section) != getattr(old.capture, section):
                log.warning("reload: capture.%s changes on restart only", section)
        if new.metrics.address != old.metrics.address:
            log.warning("reload: metrics.address changes on restart only")
        if new.hep != old.hep:
            log.warning("reload: hep changes on restart only")
        self.cfg = new
        log.info(
            "reloaded configuration: %d subscriber networks, log level %s",
            len(new.subscriber_networks),
            new.daemon.log_level,
        )
        self.notifier.send("READY=1", "STATUS=configuration reloaded")

    def _flush_sinks(self) -> None:
        """Hand the records to the operating system; log the uids of those on disk."""
        done = False
        try:
            done = self._sinks.flush()
        except OSError as exc:
            log.error("cannot flush records: %s", exc)
        if done and self.written is not None:
            try:
                self.written.commit()
            except OSError as exc:
                log.error("cannot log written records in %s: %s", self.written.path, exc)

    # -- reporting --------------------------------------------------------------

    def _status_line(self, now: float, base: tuple[float, int]) -> str:
        stats = self.pipeline.stats
        elapsed = max(now - base[0], 1e-6)
        rate = (stats.packets - base[1]) / elapsed
        drops = (
            sum(c.dropped + c.if_rx_missed for c in self.capture.counters) if self.capture else 0
        )
        line = (
            f"{rate:,.0f} packets/s, {self.pipeline.tracker.open_calls} calls open, "
            f"{stats.records} records, {drops} packets dropped"
        )
        store = self._sinks.metrics()
        if store.get("spool_disk_full") or store.get("spool_records_lost"):
            line += (
                f"; SPOOL DISK FULL: {store.get('spool_in_memory', 0)} records in memory, "
                f"{store.get('spool_records_lost', 0)} lost"
            )
        return line

    def _publish(self) -> None:
        if self.metrics is None:
            return
        from voiplog.daemon.metrics import Snapshot

        stats = self.pipeline.stats
        store = {}
        try:
            store = self._sinks.metrics()
        except Exception as exc:
            log.debug("store metrics unavailable: %s", exc)
        counters = self.capture.counters if self.capture is not None else self._last_counters
        self._last_counters = counters
        self.metrics.publish(
            Snapshot(
                packets=stats.packets,
                bytes=sum(c.bytes for c in counters),
                sip_messages=stats.sip_messages,
                rtp_packets=stats.rtp_packets,
                records=stats.records,
                open_calls=self.pipeline.tracker.open_calls,
                spool_depth=int(store.get("spool_depth", 0)),
                store_latency_s=float(store.get("store_latency_s", 0.0)),
                parse_errors=dict(stats.parse_errors),
                dispositions=dict(stats.dispositions),
                interfaces={
                    c.name: (c.received, c.dropped, c.if_rx_dropped, c.if_rx_missed)
                    for c in counters
                },
                records_capture_loss=self.loss_records,
                app_classifier_packets=stats.app_classifier_packets,
                app_calls_without_media=stats.weird.get("app.call_without_media", 0),
                store_record_conflicts=int(store.get("record_conflicts", 0)),
                spool_in_memory=int(store.get("spool_in_memory", 0)),
                spool_disk_full=int(store.get("spool_disk_full", 0)),
                spool_records_lost=int(store.get("spool_records_lost", 0)),
                hep_messages=dict(stats.hep),
                hep_refused={k: v for k, v in stats.weird.items() if k.startswith("hep.")},
            )
        )
