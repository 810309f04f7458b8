"""Two network namespaces joined by a veth pair, for live-capture tests and benchmarks.

Addresses come from TEST-NET-1 (192.0.2.0/24, RFC 5737) and exist only inside
the namespaces made here; nothing is routed outside them. Leaving the context
deletes both namespaces (and with them the veth pair), also after a failure.
Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

CALLER_IP = "192.0.2.1"
CALLEE_IP = "192.0.2.2"


@dataclass(frozen=True)
class VethPair:
    caller_ns: str  # namespace holding CALLER_IP on caller_if
    callee_ns: str
    caller_if: str
    callee_if: str

    def command(self, ns: str, *argv: str) -> list[str]:
        """argv run inside namespace `ns`."""
        return ["ip", "netns", "exec", ns, *argv]


def available() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def veth_pair(tag: str = "vl") -> Iterator[VethPair]:
    suffix = f"{tag}{os.getpid() % 100000}"
    pair = VethPair(f"{suffix}a", f"{suffix}b", "vla", "vlb")
    try:
        _ip("netns", "add", pair.caller_ns)
        _ip("netns", "add", pair.callee_ns)
        _ip(
            "link", "add", pair.caller_if, "netns", pair.caller_ns, "type", "veth",
            "peer", "name", pair.callee_if, "netns", pair.callee_ns,
        )  # fmt: skip
        for ns, ifname, address in (
            (pair.caller_ns, pair.caller_if, CALLER_IP),
            (pair.callee_ns, pair.callee_if, CALLEE_IP),
        ):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in (pair.caller_ns, pair.callee_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
