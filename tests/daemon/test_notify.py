"""systemd notifications over a Unix datagram socket, as sd_notify sends them."""

from __future__ import annotations

import os
import socket

import pytest

from voiplog.daemon.notify import Notifier


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_messages_reach_the_socket(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    notifier.ready("capturing on eth0")
    notifier.watchdog()
    notifier.status("12 packets/s")
    notifier.stopping()
    got = [sock.recv(4096).decode() for _ in range(4)]
    assert got[0].split("\n") == ["READY=1", "STATUS=capturing on eth0", f"MAINPID={os.getpid()}"]
    assert got[1] == "WATCHDOG=1"
    assert got[2] == "STATUS=12 packets/s"
    assert got[3].split("\n")[0] == "STOPPING=1"
    notifier.close()


def test_abstract_socket_name():
    name = f"voiplog-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready("x")  # no socket, no error


def test_unreachable_socket_is_not_fatal(tmp_path):
    Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready("x")


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_period(env, interval):
    assert Notifier(env).watchdog_interval_s == interval
