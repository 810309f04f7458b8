"""POP configuration: one TOML file per point of presence, validated, overridable by env.

Loaded explicitly (`load_config`) and passed down; nothing reads it at import
time. Environment variables override the file: ``VOIPLOG_POP=ams1`` or, for
nested keys, ``VOIPLOG_CALLS__IDLE_TIMEOUT_S=600`` (double underscore between
levels). Errors name the file, the key path and the reason.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from voiplog.calls import CallSettings
from voiplog.enrich import SubscriberNetwork, SubscriberNetworks
from voiplog.errors import UsageError
from voiplog.pipeline import DEFAULT_SIP_PORTS


class ConfigError(UsageError):
    """A configuration file or environment override that cannot be used."""


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
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1..65535")
        return sorted(set(ports))


_CALL_DEFAULTS = CallSettings()


class CallsConfig(_Strict):
    setup_timeout_s: float = Field(_CALL_DEFAULTS.setup_timeout_s, gt=0)
    idle_timeout_s: float = Field(_CALL_DEFAULTS.idle_timeout_s, gt=0)
    linger_s: float = Field(_CALL_DEFAULTS.linger_s, ge=0)
    max_open_calls: int = Field(_CALL_DEFAULTS.max_open_calls, ge=1)
    max_media_flows: int = Field(_CALL_DEFAULTS.max_media_flows, ge=1)

    def settings(self) -> CallSettings:
        return CallSettings(**self.model_dump())


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
        False, description="Also load the leases imported into VOIPLOG_DATABASE_URL"
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
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1..65535")
        return sorted(set(ports))


class PopConfig(BaseSettings):
    """Everything a POP's voiplog instance needs to know."""

    model_config = SettingsConfigDict(
        env_prefix="VOIPLOG_", env_nested_delimiter="__", extra="forbid"
    )

    pop: str = Field("default", description="Name of the point of presence")
    sensor: str = Field("sensor", description="Name of this capture host within the POP")
    sip: SipConfig = Field(default_factory=SipConfig)
    calls: CallsConfig = Field(default_factory=CallsConfig)
    subscriber_networks: list[SubscriberNetworkConfig] = Field(default_factory=list)
    enrichment: EnrichmentConfig | None = Field(
        None, description="Subscriber and far-end enrichment; absent: records name no subscriber"
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

    def subscriber_index(self) -> SubscriberNetworks:
        networks = []
        for entry in self.subscriber_networks:
            location = {k: v for k, v in entry.model_dump().items() if k != "cidr"}
            networks.append(SubscriberNetwork(ipaddress.ip_network(entry.cidr), location))
        return SubscriberNetworks(networks, pop=self.pop)


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{source}: {path}: {error['msg']}")
    return "\n".join(lines)


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
    try:
        return PopConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None
