"""Real faults between the store writer and Postgres: a TCP relay that goes silent."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import psycopg2


class StallingRelay:
    """A TCP relay to Postgres that can stall: connections stay open, nothing comes back.

    Stalled, it stops moving bytes in both directions on the connections it
    has and accepts new ones without ever answering them, as a hung server or
    a black-holed path does. Restored, new connections go through again; the
    stalled ones stay silent until `close`.

    With `stall_queries` set, each new connection stalls at its first query
    instead: connected, authenticated, then silent.

    With `socket_dir` it listens on a Unix socket there (as Postgres does), which
    a process in another network namespace reaches through the file system.
    """

    def __init__(self, dsn: str, socket_dir: Path | None = None) -> None:
        params = psycopg2.extensions.parse_dsn(dsn)
        self.target = (params.get("host", "127.0.0.1"), int(params.get("port", 5432)))
        if socket_dir is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
            params.update(host="127.0.0.1", port=str(self.port))
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(Path(socket_dir) / ".s.PGSQL.5432"))
            self.listener.listen(16)
        self.dsn = (
            " ".join(f"{key}={value}" for key, value in params.items())
            if socket_dir is None
            else self.dsn_at(dsn, socket_dir)
        )
        self.stalled = False
        # Connections made while set go through the start-up and authentication,
        # then stall at their first query (simple or extended), both ways.
        self.stall_queries = False
        self._closed = False
        self._generation = 0  # connections of an earlier generation stay stalled
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def dsn_at(dsn: str, socket_dir: Path) -> str:
        """`dsn` through a relay listening in `socket_dir` (there or not yet)."""
        params = psycopg2.extensions.parse_dsn(dsn)
        params.update(host=str(socket_dir), port="5432")
        return " ".join(f"{key}={value}" for key, value in params.items())

    def stall(self) -> None:
        with self._lock:
            self.stalled = True
            self._generation += 1

    def restore(self) -> None:
        self.stalled = False

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
                generation = self._generation
                if self.stalled:
                    continue  # held open, never answered
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.append(server)
            frozen = threading.Event()  # this connection's own stall (`stall_at_first_query`)
            for a, b, client_side in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pipe, args=(a, b, generation, frozen, client_side), daemon=True
                ).start()

    def _pipe(
        self,
        a: socket.socket,
        b: socket.socket,
        generation: int,
        frozen: threading.Event,
        client_side: bool,
    ) -> None:
        a.settimeout(0.05)
        try:
            while not self._closed:
                if self._generation != generation or frozen.is_set():
                    time.sleep(0.05)  # stalled: the bytes stay where they are
                    continue
                try:
                    data = a.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if client_side and self.stall_queries and data[:1] in (b"Q", b"P"):
                    frozen.set()  # connected and authenticated; the first query never lands
                    continue
                b.sendall(data)
        except OSError:
            pass
        finally:
            if self._generation == generation:
                for s in (a, b):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
