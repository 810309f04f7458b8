"""The HEP listener of `voiplog run`: UDP and TCP sockets receiving HEP from proxies and SBCs.

Strategy: non-blocking sockets read in batches by the daemon's one pipeline thread,
between two reads of the capture rings (their descriptors are polled with the rings,
so a HEP packet wakes the loop). Each packet comes out as ``(received_us, bytes,
sender)``, for `voiplog.pipeline.Pipeline.feed_hep`, which decodes and judges it.
TCP connections are cut into messages by `HepStreamSplitter`; a connection whose
framing is lost, or one more than `MAX_CONNECTIONS`, is closed and counted, never
fatal to the listener.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable, Iterable

from voiplog.errors import UsageError
from voiplog.packet.hep import HepError, HepStreamSplitter

__all__ = ["MAX_CONNECTIONS", "HepListenError", "HepListener"]

MAX_CONNECTIONS = 256
_MAX_DATAGRAMS_PER_READ = 4096
_RECV_BYTES = 65535
_RECEIVE_BUFFER = 8 << 20


class HepListenError(UsageError):
    """A listen address that cannot be bound (in use, not local, no permission)."""


class HepListener:
    """Sockets bound to ``(transport, host, port)`` addresses; `read` drains them."""

    def __init__(
        self,
        addresses: Iterable[tuple[str, str, int]],
        on_weird: Callable[[str], None],
        max_buffer: int = 256 * 1024,
    ) -> None:
        self._on_weird = on_weird
        self._max_buffer = max_buffer
        self._udp: list[socket.socket] = []
        self._servers: list[socket.socket] = []
        self._connections: dict[socket.socket, tuple[str, HepStreamSplitter]] = {}
        try:
            for transport, host, port in addresses:
                self._bind(transport, host, port)
        except BaseException:
            self.close()
            raise

    def _bind(self, transport: str, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(family, kind)
        try:
            if transport == "udp":
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            if transport == "tcp":
                sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise HepListenError(
                f"hep.listen: cannot listen on {transport}:{host}:{port}: {exc.strerror}"
            ) from None
        (self._udp if transport == "udp" else self._servers).append(sock)

    def addresses(self) -> list[str]:
        """``transport:host:port`` of every bound socket (the port the kernel gave for 0)."""
        out = []
        for sock in self._udp + self._servers:
            host, port = sock.getsockname()[:2]
            transport = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
            out.append(f"{transport}:{f'[{host}]' if ':' in host else host}:{port}")
        return out

    def fds(self) -> list[int]:
        """Descriptors to poll for readability: the sockets and the open connections."""
        return [s.fileno() for s in self._udp + self._servers + list(self._connections)]

    def read(self) -> list[tuple[int, bytes, str]]:
        """Every HEP packet waiting now, with its time of receipt and sender address."""
        out: list[tuple[int, bytes, str]] = []
        for sock in self._udp:
            for _ in range(_MAX_DATAGRAMS_PER_READ):
                try:
                    data, peer = sock.recvfrom(_RECV_BYTES)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._on_weird("hep.receive_error")
                    break
                out.append((time.time_ns() // 1000, data, peer[0]))
        for server in self._servers:
            self._accept(server)
        for conn in list(self._connections):
            self._receive(conn, out)
        return out

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, peer = server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._on_weird("hep.connection_refused")
                return
            if len(self._connections) >= MAX_CONNECTIONS:
                conn.close()
                self._on_weird("hep.connection_refused")
                continue
            conn.setblocking(False)
            self._connections[conn] = (peer[0], HepStreamSplitter(self._max_buffer))

    def _receive(self, conn: socket.socket, out: list) -> None:
        peer, splitter = self._connections[conn]
        while True:
            try:
                data = conn.recv(_RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if not data:
                self._drop(conn)
                return
            try:
                messages = splitter.feed(data)
            except HepError as exc:
                self._on_weird(exc.kind)
                self._drop(conn)
                return
            now = time.time_ns() // 1000
            out.extend((now, message, peer) for message in messages)

    def _drop(self, conn: socket.socket) -> None:
        self._connections.pop(conn, None)
        conn.close()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        for sock in self._udp + self._servers + list(self._connections):
            sock.close()
        self._udp, self._servers, self._connections = [], [], {}

    def __enter__(self) -> HepListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
