"""The saved state of open calls: written at a stop and at checkpoints, read at start.

Strategy: one JSON file per POP (orjson), written whole to a temporary file in
the same directory, fsynced, renamed over the old one and the directory fsynced,
so that a crash leaves either the old state or the new one, never a mix. The
file names the voiplog version, its own format and a hash of the configuration
that decides how calls are tracked; a state whose version or hash differs is
refused and set aside, never half-loaded: the tracker's `restore` takes it whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import orjson

import voiplog

FORMAT = 1


class StateError(Exception):
    """A saved state that cannot be taken back: the message says why."""


def state_path(cfg) -> Path:
    """daemon.state_dir (else <state directory>/calls), then <pop>.json."""
    if cfg.daemon.state_dir:
        directory = Path(cfg.daemon.state_dir)
    else:
        from voiplog.store.embedded import state_dir

        directory = state_dir() / "calls"
    return directory / f"{cfg.pop}.json"


def config_hash(cfg) -> str:
    """A hash of what decides how calls are tracked and matched to packets."""
    relevant = {
        "pop": cfg.pop,
        "sip": cfg.sip.model_dump(mode="json"),
        "calls": cfg.calls.model_dump(mode="json"),
        "media_sessions": cfg.media_sessions.model_dump(mode="json"),
    }
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()


def save(path: Path, cfg_hash: str, saved_us: int, calls: dict) -> int:
    """Write `calls` (a tracker snapshot) atomically; return the bytes written."""
    data = orjson.dumps(
        {
            "voiplog": voiplog.__version__,
            "format": FORMAT,
            "config": cfg_hash,
            "saved_us": saved_us,
            "calls": calls,
        }
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return len(data)


def load(path: Path, cfg_hash: str) -> tuple[int, dict] | None:
    """(saved_us, tracker snapshot) of the state at `path`, None when there is none.

    Raises StateError for a state of another version or configuration, or one
    that does not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        raw = file.read()
    try:
        data = orjson.loads(raw)
        version, fmt, saved_hash = data["voiplog"], data["format"], data["config"]
        saved_us, calls = int(data["saved_us"]), data["calls"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path}: not a saved state of open calls ({exc})") from None
    if version != voiplog.__version__ or fmt != FORMAT:
        raise StateError(
            f"{path}: saved by voiplog {version} (format {fmt}), "
            f"this is {voiplog.__version__} (format {FORMAT})"
        )
    if saved_hash != cfg_hash:
        raise StateError(
            f"{path}: saved under another [sip]/[calls]/[media_sessions] configuration"
        )
    return saved_us, calls


class WrittenLog:
    """The uids of the records handed safely to the sinks since the state was last
    saved, one per line, beside the state (``<pop>.written``).

    A call that ends after a checkpoint is written, and is still open in the
    saved state; after SIGKILL the next run would write it again, from the
    state, ended by a timeout. Its uid in this log tells that run the call's
    true record exists: the copy is dropped when it comes. Uids are added once
    the sinks have the records on disk (`commit`), and the log starts over at
    each saved state (`restart`), keeping the uids still awaited.
    """

    def __init__(self, path: Path) -> None:
        """Open (and lock) the log; raises StateError when another run holds it."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self.path = path
        self._fd = os.open(path, flags, 0o600)
        try:
            # Held for the run's life: one run per state, never two writing it.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StateError(f"{path}: held by another voiplog run of this POP") from None
        with os.fdopen(os.dup(self._fd), "rb") as file:
            self.before: set[str] = {line for line in file.read().decode().split() if line}
        self._pending: list[str] = []

    def note(self, uid: str) -> None:
        """A record handed to the sinks, not yet known to be on disk."""
        self._pending.append(uid)

    def commit(self) -> None:
        """The records noted so far are on disk: log their uids."""
        if self._pending:
            _write_all(self._fd, "".join(f"{uid}\n" for uid in self._pending).encode())
            self._pending.clear()

    def restart(self, awaited: set[str]) -> None:
        """The state was saved: only the uids still `awaited` (and those not yet
        committed) matter from now on."""
        os.ftruncate(self._fd, 0)
        if awaited:
            _write_all(self._fd, "".join(f"{uid}\n" for uid in sorted(awaited)).encode())

    def close(self) -> None:
        os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def written_path(state: Path) -> Path:
    """Where the `WrittenLog` of the state at ``state`` lives."""
    return state.with_suffix(".written")


def set_aside(path: Path, now_us: int) -> Path:
    """Rename a refused state out of the way (kept for inspection, never loaded)."""
    target = path.with_name(f"{path.name}.refused-{now_us}")
    os.replace(path, target)
    return target
