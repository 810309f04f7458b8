"""`voiplog run`: the live daemon, capturing on network interfaces (systemd Type=notify)."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import click
from click.core import ParameterSource

from voiplog.cli._sinks import open_record_sinks

log = logging.getLogger("voiplog.run")


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="POP config file (TOML); reloaded on SIGHUP.",
)
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    metavar="NAME",
    help="Capture on NAME (repeatable); replaces capture.interfaces of the config.",
)
@click.option(
    "--store",
    type=click.Choice(["none", "db"]),
    default="db",
    show_default=True,
    help="Where records are kept: 'db' is the Postgres retention store (database_url of the "
    "config, else VOIPLOG_DATABASE_URL, else an embedded Postgres), through the durable "
    "spool; 'none' writes only JSON lines.",
)
@click.option(
    "--jsonl",
    "jsonl_path",
    metavar="PATH|-",
    help="Write one JSON object per record to PATH, or '-' for standard output "
    "(the default with --store none).",
)
@click.pass_context
def run(
    ctx: click.Context,
    config_path: str | None,
    interfaces: tuple[str, ...],
    store: str,
    jsonl_path: str | None,
) -> None:
    """Capture live traffic and write a record for every call, until SIGTERM.

    With hep.listen set in the config, HEP from SIP proxies and SBCs is received
    at the same time and its calls recorded like captured ones; with hep.listen
    and no interface, the daemon records the HEP feed alone.

    Needs CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode). SIGTERM or SIGINT
    saves the open calls and exits 0; the next start goes on with them (flag
    "restarted"). With daemon.resume_calls = false it closes them instead
    (ended_by "shutdown") and writes their records.
    SIGHUP re-reads the config file: subscriber networks, call timeouts, SIP and
    capture ports and the log level change without a restart. Tells systemd
    READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 when NOTIFY_SOCKET is set.
    """
    from voiplog.capture.bpf import FilterError
    from voiplog.capture.live import CaptureError, NoSuchInterface
    from voiplog.config import ConfigError, load_config
    from voiplog.daemon import Daemon, DaemonOptions
    from voiplog.errors import UsageError
    from voiplog.wiring import WiringError

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    chosen = list(interfaces) or list(cfg.capture.interfaces)
    if not chosen and not cfg.hep.listen:
        where = config_path or "configuration"
        click.echo(
            f"{where}: capture.interfaces: no interface to capture on (set it, give "
            "--interface, or receive HEP alone with hep.listen)",
            err=True,
        )
        raise SystemExit(2)
    follow = ctx.parent is None or (
        ctx.parent.get_parameter_source("log_level") in (None, ParameterSource.DEFAULT)
    )
    if follow:
        logging.getLogger().setLevel(cfg.daemon.log_level.upper())

    options = DaemonOptions(
        interfaces=chosen,
        config_path=config_path,
        load_config=lambda: load_config(config_path),
        follow_config_log_level=follow,
    )
    with ExitStack() as stack:
        # SIGTERM must end within systemd's stop timeout: at most 5 s go to
        # storing the spool; the rest is stored at the next start.
        sinks = open_record_sinks(
            stack,
            store,
            jsonl_path,
            config_path,
            drain_timeout_s=min(5.0, cfg.store.drain_timeout_s),
            spooled_is_failure=False,
        )
        try:
            daemon = Daemon(cfg, options, sinks)
        except WiringError as exc:
            click.echo(f"voiplog: {_prefixed(config_path, exc)}", err=True)
            raise SystemExit(2) from None
        try:
            daemon.open()
        except NoSuchInterface as exc:
            if interfaces:  # named on the command line, not in the file
                text = str(exc).replace("capture.interfaces:", "--interface:", 1)
                click.echo(f"voiplog: {text}", err=True)
            else:
                click.echo(f"voiplog: {_prefixed(config_path, exc)}", err=True)
            raise SystemExit(2) from None
        except FilterError as exc:
            click.echo(f"voiplog: {_prefixed(config_path, exc)}", err=True)
            raise SystemExit(2) from None
        except CaptureError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None
        except UsageError as exc:
            click.echo(f"voiplog: {_prefixed(config_path, exc)}", err=True)
            raise SystemExit(2) from None
        try:
            code = daemon.run()
        except OSError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None
        finally:
            daemon.close()
    raise SystemExit(code)


def _prefixed(config_path: str | None, exc: Exception) -> str:
    from voiplog.capture.bpf import FilterError

    text = str(exc)
    if isinstance(exc, FilterError):
        text = f"capture.extra_filter: {text}"
    return f"{config_path}: {text}" if config_path else text
