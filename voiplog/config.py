"""POP configuration: one TOML file per point of presence, validated, overridable by env.

Loaded explicitly (`load_config`) and passed down; nothing reads it at import
time. Environment variables override the file: ``VOIPLOG_POP=ams1`` or, for
nested keys, ``VOIPLOG_CALLS__IDLE_TIMEOUT_S=600`` (double underscore between
levels). Errors name the file, the key path and the reason.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from voiplog._overrides import ENV_PREFIX, overrides_config
from voiplog.errors import UsageError
from voiplog.settings import (
    DEFAULT_HEP_PORT,
    DEFAULT_SIP_PORTS,
    AppCallFilter,
    CallSettings,
    FlowSettings,
    FragmentSettings,
    HepSettings,
    ReassemblySettings,
    TcpSettings,
)

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class ConfigError(UsageError):
    """A configuration file or environment override that cannot be used."""


def _valid_ports(ports: list[int]) -> list[int]:
    """Ports checked to be in 1..65535, sorted, each once."""
    for port in ports:
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1..65535")
    return sorted(set(ports))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SipConfig(_Strict):
    ports: list[int] = Field(
        default_factory=lambda: list(DEFAULT_SIP_PORTS),
        description="UDP/TCP ports always treated as SIP; SIP on other ports is found by its start line.",
    )

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        return _valid_ports(ports)


_CALL_DEFAULTS = CallSettings()


class CallsConfig(_Strict):
    setup_timeout_s: float = Field(_CALL_DEFAULTS.setup_timeout_s, gt=0)
    idle_timeout_s: float = Field(_CALL_DEFAULTS.idle_timeout_s, gt=0)
    linger_s: float = Field(_CALL_DEFAULTS.linger_s, ge=0)
    max_open_calls: int = Field(_CALL_DEFAULTS.max_open_calls, ge=1)
    max_media_flows: int = Field(_CALL_DEFAULTS.max_media_flows, ge=1)
    register_timeout_s: float = Field(_CALL_DEFAULTS.register_timeout_s, gt=0)
    max_open_registrations: int = Field(_CALL_DEFAULTS.max_open_registrations, ge=1)
    session_link_window_s: float = Field(_CALL_DEFAULTS.session_link_window_s, ge=0)
    session_link_keep_s: float = Field(_CALL_DEFAULTS.session_link_keep_s, ge=0)

    def settings(self) -> CallSettings:
        return CallSettings(**self.model_dump())


_FLOW_DEFAULTS = FlowSettings()


class MediaSessionsConfig(_Strict):
    """Records of VoIP without readable SIP: RTP no SDP announced, SRTP, WebRTC, SIP-TLS."""

    enabled: bool = _FLOW_DEFAULTS.enabled
    idle_gap_s: float = Field(_FLOW_DEFAULTS.idle_gap_s, gt=0)
    tls_idle_gap_s: float = Field(_FLOW_DEFAULTS.tls_idle_gap_s, gt=0)
    max_sessions: int = Field(_FLOW_DEFAULTS.max_sessions, ge=1)
    max_candidates: int = Field(_FLOW_DEFAULTS.max_candidates, ge=1)
    candidate_timeout_s: float = Field(_FLOW_DEFAULTS.candidate_timeout_s, gt=0)
    max_tls_connections: int = Field(_FLOW_DEFAULTS.max_tls_connections, ge=1)
    min_packets: int = Field(_FLOW_DEFAULTS.min_packets, ge=2, le=64)
    sip_tls_ports: list[int] = Field(default_factory=lambda: list(_FLOW_DEFAULTS.sip_tls_ports))
    app_classifier: Literal["ndpi", "builtin", "off"] = _FLOW_DEFAULTS.app_classifier  # type: ignore[assignment]
    app_min_packets: int = Field(_FLOW_DEFAULTS.app_min_packets, ge=2)
    app_min_return_packets: int = Field(_FLOW_DEFAULTS.app_min_return_packets, ge=1)
    app_min_span_s: float = Field(_FLOW_DEFAULTS.app_min_span_s, ge=0)
    app_min_rate_pps: float = Field(_FLOW_DEFAULTS.app_min_rate_pps, gt=0)
    app_named_min_packets: int = Field(_FLOW_DEFAULTS.app_named_min_packets, ge=2)
    app_quiet_min_packets: int = Field(_FLOW_DEFAULTS.app_quiet_min_packets, ge=2)
    app_quiet_min_span_s: float = Field(_FLOW_DEFAULTS.app_quiet_min_span_s, ge=0)
    app_quiet_min_rate_pps: float = Field(_FLOW_DEFAULTS.app_quiet_min_rate_pps, gt=0)
    app_join_gap_s: float = Field(_FLOW_DEFAULTS.app_join_gap_s, ge=0)
    app_new_socket_gap_s: float = Field(_FLOW_DEFAULTS.app_new_socket_gap_s, ge=0)
    app_sni_window_s: float = Field(_FLOW_DEFAULTS.app_sni_window_s, ge=0)
    stream_min_rate_pps: float = Field(_FLOW_DEFAULTS.stream_min_rate_pps, gt=0)

    @field_validator("sip_tls_ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        return _valid_ports(ports)

    def settings(self) -> FlowSettings:
        values = self.model_dump()
        values["sip_tls_ports"] = tuple(values["sip_tls_ports"])
        return FlowSettings(**values)


_FRAGMENT_DEFAULTS = FragmentSettings()
_TCP_DEFAULTS = TcpSettings()
_REASSEMBLY_DEFAULTS = ReassemblySettings()


class ReassemblyConfig(_Strict):
    fragment_timeout_s: float = Field(_FRAGMENT_DEFAULTS.timeout_us / 1e6, gt=0)
    fragment_max_datagrams: int = Field(_FRAGMENT_DEFAULTS.max_datagrams, ge=1)
    fragment_max_bytes: int = Field(_FRAGMENT_DEFAULTS.max_bytes, ge=65535)
    tcp_max_connections: int = Field(_TCP_DEFAULTS.max_connections, ge=1)
    tcp_max_held_bytes: int = Field(_TCP_DEFAULTS.max_held_bytes, ge=1500)
    tcp_gap_timeout_s: float = Field(_TCP_DEFAULTS.gap_timeout_us / 1e6, gt=0)
    tcp_idle_timeout_s: float = Field(_TCP_DEFAULTS.idle_timeout_us / 1e6, gt=0)
    max_stream_buffer: int = Field(_REASSEMBLY_DEFAULTS.max_stream_buffer, ge=4096)
    mirror_dedup_ms: float = Field(0.0, ge=0, le=1000)

    def settings(self) -> ReassemblySettings:
        return ReassemblySettings(
            fragments=FragmentSettings(
                timeout_us=round(self.fragment_timeout_s * 1e6),
                max_datagrams=self.fragment_max_datagrams,
                max_bytes=self.fragment_max_bytes,
            ),
            tcp=TcpSettings(
                max_connections=self.tcp_max_connections,
                max_held_bytes=self.tcp_max_held_bytes,
                gap_timeout_us=round(self.tcp_gap_timeout_s * 1e6),
                idle_timeout_us=round(self.tcp_idle_timeout_s * 1e6),
            ),
            max_stream_buffer=self.max_stream_buffer,
            mirror_window_us=round(self.mirror_dedup_ms * 1000),
        )


class SubscriberNetworkConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # free location keys: site, address, lat, lon, cell...

    cidr: str

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, cidr: str) -> str:
        try:
            return str(ipaddress.ip_network(cidr, strict=True))
        except ValueError as exc:
            raise ValueError(f"not a network address: {exc}") from None


class RadiusClientConfig(_Strict):
    address: str = Field(description="Source address of a NAS sending accounting")
    # SecretStr: `voiplog config check` prints it as stars.
    secret: SecretStr | None = Field(None, description="Shared secret, to check each request")

    @field_validator("address")
    @classmethod
    def _valid_address(cls, address: str) -> str:
        try:
            return str(ipaddress.ip_address(address))
        except ValueError as exc:
            raise ValueError(f"not an address: {exc}") from None


class EnrichmentConfig(_Strict):
    """Sources telling which subscriber held an address, and where a far end is."""

    lease_files: list[str] = Field(
        default_factory=list, description="Lease history files: .csv, or .jsonl JSON lines"
    )
    leases_from_database: bool = Field(
        False,
        description="Also load the leases imported into the store "
        "(store.database_url, else VOIPLOG_DATABASE_URL)",
    )
    radius_ports: list[int] = Field(
        default_factory=lambda: [1813], description="UDP ports of RADIUS accounting to follow"
    )
    radius_session_timeout_s: float = Field(7200, gt=0)
    radius_max_sessions: int = Field(1_000_000, ge=1)
    radius_clients: list[RadiusClientConfig] = Field(default_factory=list)
    cgnat_files: list[str] = Field(
        default_factory=list, description="Port-block files: .csv, or IPFIX NAT event logs"
    )
    maxmind_databases: list[str] = Field(
        default_factory=list, description="MaxMind-format databases (Country/City, ASN)"
    )

    @field_validator("radius_ports")
    @classmethod
    def _radius_ports_in_range(cls, ports: list[int]) -> list[int]:
        return _valid_ports(ports)


class StoreConfig(_Strict):
    database_url: str | None = Field(
        None,
        description="libpq DSN or URL of the retention store; else VOIPLOG_DATABASE_URL; "
        "else an embedded Postgres in the user's data directory.",
    )
    spool_dir: str | None = Field(
        None, description="Durable spool directory (default: <user data dir>/voiplog/spool/<pop>)."
    )
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20)
    spool_segment_bytes: int = Field(8 << 20, ge=1 << 12)
    spool_memo_bytes: int = Field(
        128 << 20,
        ge=0,
        description="Memory for the COPY streams of spooled segments, so that draining them "
        "takes no pass over their records; 0 reads every segment back from its file.",
    )
    spool_reserve_bytes: int = Field(
        64 << 20,
        ge=0,
        description="Memory for the records taken while the spool's file system is full, "
        "written out once there is room; records beyond it are counted lost.",
    )
    fsync: Literal["always", "batch", "never"] = "batch"
    fsync_interval_ms: int = Field(200, ge=1)
    drainers: int = Field(2, ge=1, le=16)
    retention_days: int = Field(180, ge=1)
    audit_retention_days: int = Field(
        365, ge=1, description="Days `voiplog audit prune` keeps of the audit trail."
    )
    partitions_ahead_days: int = Field(7, ge=0, le=366)
    accept_past_days: int = Field(7300, ge=1)
    drain_timeout_s: float = Field(30.0, ge=0)


class AccessConfig(_Strict):
    signing_key: str | None = Field(
        None,
        description="PEM private key (ECDSA P-256/P-384 or RSA >= 2048) that signs evidence "
        "bundles; else VOIPLOG_SIGNING_KEY or `export --key`.",
    )
    signing_cert: str | None = Field(
        None,
        description="PEM X.509 certificate of signing_key; else VOIPLOG_SIGNING_CERT or "
        "`export --cert`.",
    )
    local_zone: str | None = Field(
        None, description="IANA zone of the local times in exported tables (default UTC)."
    )
    tsa_url: str | None = Field(
        None,
        description="RFC 3161 time-stamping authority (http or https URL) that stamps each "
        "bundle's signature; unset: bundles carry no time-stamp.",
    )
    tsa_timeout_s: float = Field(10.0, gt=0, le=300)


class CaptureConfig(_Strict):
    interfaces: list[str] = Field(
        default_factory=list, description="Interfaces `voiplog run` captures on."
    )
    snaplen: int = Field(65535, ge=64, le=262144, description="Bytes kept of each packet.")
    promiscuous: bool = Field(True, description="Put the interfaces in promiscuous mode.")
    udp_ports: list[int] = Field(
        default_factory=lambda: [1813, 3478, 3479, 4789, 5349],
        description="UDP ports captured besides SIP and RTP (RADIUS, STUN/TURN, VXLAN).",
    )
    tcp_ports: list[int] = Field(
        default_factory=lambda: [5349],
        description="TCP ports captured besides SIP (TURN over TLS).",
    )
    extra_filter: str = Field(
        "", description="tcpdump-style expression ORed with the built-in filter (needs libpcap)."
    )
    ring_mb: int = Field(64, ge=1, le=4096, description="Receive ring per interface, MiB.")
    block_kb: int = Field(1024, ge=64, le=65536, description="Ring block size, KiB.")
    block_timeout_ms: int = Field(50, ge=1, le=1000, description="Hand over a partial block after.")
    app_call_filter: AppCallFilter | None = Field(
        None,
        description='UDP kept for app calls: "off", "signatures", "all-udp"; unset: '
        '"signatures" when media_sessions.app_classifier is not "off", else "off".',
    )
    udp_drop_ports: list[int] | None = Field(
        None,
        description="Replaces the built-in list of UDP ports never kept for app calls "
        "(443, 53, 123...).",
    )

    @field_validator("udp_ports", "tcp_ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        return _valid_ports(ports)

    @field_validator("udp_drop_ports")
    @classmethod
    def _drop_ports_in_range(cls, ports: list[int] | None) -> list[int] | None:
        return None if ports is None else _valid_ports(ports)

    @field_validator("block_kb")
    @classmethod
    def _power_of_two(cls, kb: int) -> int:
        if kb & (kb - 1) or kb % 4:
            raise ValueError(f"{kb} is not a power of two of at least 4")
        return kb

    @model_validator(mode="after")
    def _snaplen_fits_a_block(self) -> CaptureConfig:
        if self.snaplen + 128 > self.block_kb * 1024:
            raise ValueError(
                f"snaplen {self.snaplen} does not fit a {self.block_kb} KiB ring block; "
                "raise block_kb or lower snaplen"
            )
        return self

    @field_validator("interfaces")
    @classmethod
    def _interface_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or len(name) > 15 or "/" in name or name.strip() != name:
                raise ValueError(f"{name!r} is not an interface name")
        return names


class MetricsConfig(_Strict):
    address: str = Field("", description="host:port of the Prometheus endpoint; empty for none.")

    @field_validator("address")
    @classmethod
    def _host_port(cls, address: str) -> str:
        if not address:
            return address
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{address!r} is not host:port")
        return address


class HepConfig(_Strict):
    """HEP feeds: SIP mirrored by proxies and SBCs (Kamailio siptrace, heplify...)."""

    listen: list[str] = Field(
        default_factory=list,
        description='Where `voiplog run` receives HEP, "udp:HOST:PORT" or "tcp:HOST:PORT" '
        "(IPv6 host in brackets); empty: no listener.",
    )
    ports: list[int] = Field(
        default_factory=lambda: [DEFAULT_HEP_PORT],
        description="Ports whose UDP datagrams and TCP streams in captures (replay, capture "
        "interfaces) are read as HEP.",
    )
    auth_key: SecretStr | None = Field(
        None, description="Capture password every HEP packet must carry; unset: not checked."
    )
    node_ids: list[int] = Field(
        default_factory=list, description="Capture node ids accepted; empty: any."
    )
    max_rate_per_source: int = Field(
        0, ge=0, description="HEP packets per second accepted from one sender; 0: no limit."
    )

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        return _valid_ports(ports)

    @field_validator("node_ids")
    @classmethod
    def _node_ids_in_range(cls, ids: list[int]) -> list[int]:
        for node in ids:
            if not 0 <= node <= 0xFFFFFFFF:
                raise ValueError(f"node id {node} is outside 0..4294967295")
        return ids

    @field_validator("listen")
    @classmethod
    def _listen_addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            parse_listen_address(address)
        return addresses

    def settings(self) -> HepSettings:
        key = self.auth_key.get_secret_value().encode() if self.auth_key is not None else None
        return HepSettings(
            ports=frozenset(self.ports),
            auth_key=key,
            node_ids=frozenset(self.node_ids),
            max_rate_per_source=self.max_rate_per_source,
        )


def parse_listen_address(address: str) -> tuple[str, str, int]:
    """``(transport, host, port)`` of "udp:HOST:PORT" or "tcp:HOST:PORT"; ValueError if bad."""
    transport, _, rest = address.partition(":")
    host, sep, port = rest.rpartition(":")
    if transport not in ("udp", "tcp") or not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not udp:HOST:PORT or tcp:HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{address!r}: {host!r} is not an IP address") from None
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: port {port} is outside 1..65535")
    return transport, host, int(port)


class DaemonConfig(_Strict):
    log_level: str = Field(
        "info", pattern="^(debug|info|warning|error)$", description="Reloaded on SIGHUP."
    )
    status_interval_s: float = Field(
        5.0, gt=0, description="How often rates are told to systemd (STATUS=) and the log."
    )
    watchdog: bool = Field(True, description="Answer systemd's watchdog when it asks for it.")
    resume_calls: bool = Field(
        True,
        description="Save open calls at a stop (and every checkpoint_interval_s) and go on "
        "with them at the next start, instead of writing them flagged `shutdown`.",
    )
    checkpoint_interval_s: float = Field(
        10.0, gt=0, description="How often open calls are saved, bounding what a crash loses."
    )
    state_dir: str | None = Field(
        None, description="Where open calls are saved; default <state directory>/calls."
    )


class PopConfig(BaseModel):
    """Everything a POP's voiplog instance needs to know."""

    # validate_default as pydantic-settings sets it, so that the model validates
    # alike with and without environment overrides (`_with_environment`).
    model_config = ConfigDict(extra="forbid", validate_default=True)

    pop: str = Field("default", description="Name of the point of presence")
    sensor: str = Field("sensor", description="Name of this capture host within the POP")
    sip: SipConfig = Field(default_factory=SipConfig)
    calls: CallsConfig = Field(default_factory=CallsConfig)
    media_sessions: MediaSessionsConfig = Field(default_factory=MediaSessionsConfig)
    reassembly: ReassemblyConfig = Field(default_factory=ReassemblyConfig)
    subscriber_networks: list[SubscriberNetworkConfig] = Field(default_factory=list)
    store: StoreConfig = Field(default_factory=StoreConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    enrichment: EnrichmentConfig | None = Field(
        None, description="Subscriber and far-end enrichment; absent: records name no subscriber"
    )
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    hep: HepConfig = Field(default_factory=HepConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)


@functools.cache
def _with_environment() -> type[PopConfig]:
    """`PopConfig` reading the VOIPLOG_* overrides, as pydantic-settings reads them.

    Built on first use: pydantic-settings takes about 50 ms to load (asyncio and
    its other sources with it), and a config that no variable overrides needs none
    of it.
    """
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class PopConfigFromEnvironment(BaseSettings, PopConfig):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The environment overrides the file (passed as init values).
            return (env_settings, init_settings)

    return PopConfigFromEnvironment


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        where = _override(error["loc"]) or source
        lines.append(f"{where}: {path}: {error['msg']}")
    return "\n".join(lines)


def _override(loc: tuple) -> str | None:
    """The environment variable that set the value at ``loc``, if one did: an error
    in it is its own, not the config file's."""
    parts = [str(part) for part in loc]
    while parts:
        name = ENV_PREFIX + "__".join(parts).upper()
        if name in os.environ:
            return f"environment variable {name}"
        parts.pop()
    return None


def load_config(path: str | os.PathLike | None) -> PopConfig:
    """Load and validate a POP config file (or defaults plus environment when None)."""
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    model = _with_environment() if overrides_config() else PopConfig
    try:
        return model(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None
