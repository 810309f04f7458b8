"""The closing summary of a replay: what was read, which calls came out, what was odd."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from voiplog.pipeline import PipelineStats


def print_summary(
    stats: PipelineStats,
    corrupt_records: int,
    captures: tuple[str, ...],
    destinations: list[str] = (),
) -> None:
    """The replay's tables on standard error, ending with where the records went."""
    console = Console(stderr=True)
    traffic = Table(title="Traffic", show_header=False)
    traffic.add_column("what")
    traffic.add_column("count", justify="right")
    for label, value in (
        ("capture files", len(captures)),
        ("packets", stats.packets),
        ("bytes read", sum(os.path.getsize(path) for path in captures)),
        ("corrupt records skipped", corrupt_records),
        ("UDP datagrams", stats.udp),
        ("TCP segments", stats.tcp),
        ("IP datagrams reassembled", stats.reassembled),
        ("mirror copies dropped", stats.mirror_duplicates),
        ("SIP messages", stats.sip_messages),
        ("RTP packets on calls", stats.rtp_packets),
        ("call records", stats.records),
        ("registration records", stats.registrations),
    ):
        traffic.add_row(label, f"{value:,}")
    console.print(traffic)

    calls = Table(title="Calls by disposition")
    calls.add_column("disposition")
    calls.add_column("calls", justify="right")
    for disposition, count in sorted(stats.dispositions.items()):
        calls.add_row(disposition, f"{count:,}")
    console.print(calls)

    sip = Table(title="SIP messages")
    sip.add_column("method / status")
    sip.add_column("messages", justify="right")
    for method, count in sorted(stats.sip_requests.items()):
        sip.add_row(method, f"{count:,}")
    for status, count in sorted(stats.sip_responses.items()):
        sip.add_row(str(status), f"{count:,}")
    console.print(sip)

    for title, counts in (
        ("Unreadable packets (parse errors)", stats.parse_errors),
        ("Oddities in readable traffic", stats.weird),
        ("HEP packets read, by payload", stats.hep),
    ):
        if counts:
            table = Table(title=title)
            table.add_column("kind")
            table.add_column("count", justify="right")
            for kind, count in sorted(counts.items()):
                table.add_row(kind, f"{count:,}")
            console.print(table)
    for line in destinations:
        console.print(f"voiplog: {line}", soft_wrap=True, highlight=False)
