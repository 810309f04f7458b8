"""A spool no one else can touch: modes, planted symbolic links, untrusted directories."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from voiplog.store.spool import Spool
from voiplog.store.spool_files import SpoolDirError, frame, iter_entries


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _secret(tmp_path, text=b"root only\n"):
    """A file only its owner may read, which a planted link points at."""
    target = tmp_path / "secret"
    target.write_bytes(text)
    target.chmod(0o600)
    return target


def _locked(directory):
    from voiplog.cli._store import locked_spool_dir

    cfg = SimpleNamespace(store=SimpleNamespace(spool_dir=str(directory)), pop="ams1")
    return locked_spool_dir(cfg)


def test_the_directory_is_0700_and_every_file_0600(tmp_path):
    directory = tmp_path / "state" / "spool"
    with _locked(directory):
        spool = Spool(directory, segment_bytes=30, fsync="always")
        spool.append(b"record-one")
        spool.append(b"record-two")  # the first segment is sealed
        spool.append(b"record-three")
        spool.keep_aside("unstorable.jsonl", b"{}\n")
        assert _mode(directory) == 0o700
        assert _mode(directory / "rejected") == 0o700
        files = [p for p in directory.rglob("*") if p.is_file()]
        assert {p.name.rsplit(".", 1)[-1] for p in files} >= {"ready", "open", "jsonl"}
        assert "lock" in {p.name for p in files}
        assert {_mode(p) for p in files} == {0o600}


def test_files_of_an_older_spool_that_others_could_read_are_made_private(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    (directory / "seg-00000000000000000001-000001.ready").write_bytes(frame(b"kept"))
    (directory / "seg-00000000000000000001-000001.ready").chmod(0o644)
    spool = Spool(directory)
    assert _mode(directory) == 0o700
    assert _mode(spool.ready()[0]) == 0o600
    assert spool.pending_records() == 1


def test_planted_links_are_neither_followed_nor_drained(tmp_path, caplog):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    secret = _secret(tmp_path)
    (directory / "seg-00000000000000000001-000001.open").symlink_to(secret)
    (directory / "seg-00000000000000000002-000001.ready").symlink_to(secret)
    spool = Spool(directory)
    # A crash's open segment is truncated to its last intact entry: not through a link.
    assert secret.read_bytes() == b"root only\n"
    assert spool.ready() == []
    assert spool.pending_records() == 0
    assert "is not a regular file (a symbolic link?); left alone" in caplog.text
    spool.append(b"real")
    spool.close()
    (segment,) = spool.ready()
    assert list(iter_entries(spool.read(segment))) == [b"real"]
    assert os.path.islink(directory / "seg-00000000000000000002-000001.ready")


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path, capsys):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    secret = _secret(tmp_path)
    (directory / "lock").symlink_to(secret)
    with pytest.raises(SystemExit) as stopped, _locked(directory):
        pass
    assert stopped.value.code == 2
    assert secret.read_bytes() == b"root only\n"
    error = capsys.readouterr().err
    assert error == f"voiplog: spool {directory}: cannot use lock: a symbolic link, not a file\n"


def test_a_planted_rejected_link_gets_nothing_written_through_it(tmp_path):
    directory = tmp_path / "spool"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    directory.mkdir(mode=0o700)
    (directory / "rejected").symlink_to(elsewhere)
    spool = Spool(directory)
    with pytest.raises(OSError):
        spool.keep_aside("unstorable.jsonl", b"{}\n")
    assert list(elsewhere.iterdir()) == []


def test_a_spool_directory_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "spool").symlink_to(real)
    with pytest.raises(SpoolDirError, match=r"spool .*/spool is a symbolic link; give "):
        Spool(tmp_path / "spool")


def test_a_spool_directory_writable_by_others_is_refused(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(SpoolDirError) as refused:
        Spool(directory)
    assert (
        str(refused.value) == f"spool {directory} is writable by others (mode 0777); chmod 700 it"
    )
    assert list(directory.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_spool_directory_of_another_user_is_refused_by_the_commands(tmp_path):
    from click.testing import CliRunner

    from tests.pcapwriter import write_pcap
    from voiplog.cli.main import cli

    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    env = {
        "VOIPLOG_DATABASE_URL": "host=127.0.0.1 port=1 dbname=x user=x",
        "VOIPLOG_STORE__SPOOL_DIR": str(directory),
    }
    capture = tmp_path / "empty.pcap"
    write_pcap(capture, [])
    result = CliRunner().invoke(cli, ["replay", str(capture), "--no-progress"], env=env)
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith(
        f"voiplog: spool {directory} belongs to nobody (uid 65534), not to root"
    )
    assert len(message.splitlines()) == 1
    assert list(directory.iterdir()) == []
