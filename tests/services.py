"""Real servers for the tests, started from Debian's binaries (scripts/ensure-services.sh installs
them) and stopped by the tests themselves.

`PostgresServer` runs a throwaway PostgreSQL cluster: `initdb` in a temporary directory, then the
`postgres` server on a free 127.0.0.1 port with trust authentication, as superuser `postgres`.
PostgreSQL refuses to run as root, so under root both run as the unprivileged system user
`ferrograph-pg` (created with `useradd` if missing), which owns the temporary directory.

No server outlives the tests: `stop()` shuts it down (fast, then immediate, then SIGKILL) and
removes the directory, and the server is started through `setpriv --pdeathsig`, so that it also
gets SIGQUIT (immediate shutdown) if the test process dies without running `stop()`; the
directory such a run leaves behind is removed by the next run.

`RedisServer` runs a throwaway `redis-server` the same way (a temporary directory, a free
127.0.0.1 port, no persistence, `setpriv --pdeathsig`); Redis runs as root too. Both can be
restarted on the same port (`restart()`): PostgreSQL keeps its data, Redis (no persistence)
comes back empty."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "ferrograph-pg"
"""The unprivileged system user that initdb and postgres run as when the tests run as root."""

READY_TIMEOUT = 60.0
"""Seconds to wait for the server to accept connections (a loaded 2-core machine is slow)."""

_BINARIES = ("initdb", "postgres")


class ServiceUnavailable(RuntimeError):
    """A server the tests need cannot be started here."""


def postgres_bindir() -> Path:
    """The directory holding initdb and postgres: PATH first, then Debian's
    /usr/lib/postgresql/VERSION/bin (newest version first)."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)

    def version(d: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(d).parent.name))

    candidates += [
        Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    for d in candidates:
        if all(os.access(d / b, os.X_OK) for b in _BINARIES):
            return d
    raise ServiceUnavailable(
        "PostgreSQL's server binaries (initdb, postgres) are not on PATH nor under "
        "/usr/lib/postgresql/*/bin. Install them with scripts/ensure-services.sh "
        "(Debian's `postgresql` package)."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:  # another test run may have created it meanwhile: look again either way
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceUnavailable(
            f"could not create the system user {name!r} that PostgreSQL runs as under root: "
            f"{proc.stderr.strip() or proc.returncode}"
        ) from None


_DIR_PREFIX = "ferrograph-pg-"
_OWNER_FILE = "owner.pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_dirs() -> None:
    """Remove the directories of earlier runs whose test process died without stop() (killed,
    say); their servers are gone already (see setpriv --pdeathsig below)."""
    for d in Path(tempfile.gettempdir()).glob(_DIR_PREFIX + "*"):
        try:
            owner = int((d / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being set up right now, or not ours
        if not _pid_alive(owner):
            shutil.rmtree(d, ignore_errors=True)


class PostgresServer:
    """A throwaway PostgreSQL server; use as a context manager, or `start()` / `stop()`."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.dir: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        """A libpq URL for psycopg and LangGraph's Postgres savers."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    # -- running as the right user -----------------------------------------------------------

    def _as_user(self, argv: list[str], *, deathsig: bool = False) -> list[str]:
        """argv run as PG_USER when we are root (exec'd in place by setpriv, so that a signal
        to the returned process reaches postgres itself), else as is."""
        prefix: list[str] = []
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0:
            if not setpriv:
                raise ServiceUnavailable(
                    "running PostgreSQL as root's stand-in user needs setpriv (util-linux)"
                )
            prefix = [setpriv, "--reuid", PG_USER, "--regid", PG_USER, "--clear-groups"]
        if deathsig and setpriv:
            prefix = prefix or [setpriv]
            prefix += ["--pdeathsig", "SIGQUIT"]
        return [*prefix, *argv]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start(self) -> None:
        root = os.geteuid() == 0
        _remove_stale_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        (self.dir / _OWNER_FILE).write_text(str(os.getpid()))
        if root:
            user = _ensure_system_user(PG_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        data = self.dir / "data"
        self._log = self.dir / "server.log"
        initdb = subprocess.run(
            self._as_user([str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
                           "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]),
            cwd=self.dir, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise ServiceUnavailable(
                f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}"
            )
        # A free port can be taken between finding it and binding it: try a few.
        for _attempt in range(5):
            self.port = free_port()
            if self._launch(data):
                return
        raise ServiceUnavailable(f"postgres did not start:\n{self._log_tail()}")

    def _launch(self, data: Path) -> bool:
        """Start postgres on self.port and wait until it accepts connections; False if it
        exited because the port was taken, so the caller tries another."""
        assert self.dir is not None and self._log is not None
        argv = [
            str(self.bindir / "postgres"), "-D", str(data),
            "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.dir),
            # a throwaway cluster: durability off, for speed on a loaded machine
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        log = open(self._log, "ab")  # closed below: the server keeps its own copy
        try:
            self.proc = subprocess.Popen(
                self._as_user(argv, deathsig=True),
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                if "could not bind" in self._log_tail() or "in use" in self._log_tail():
                    return False
                raise ServiceUnavailable(f"postgres exited ({code}):\n{self._log_tail()}")
            if self._accepts_connections():
                return True
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"postgres did not accept connections within {READY_TIMEOUT:.0f} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.1)

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return "(no server log)"

    def restart(self) -> None:
        """Stops the server (fast shutdown: clients are disconnected) and starts it again on
        the same port with the same data."""
        self._stop_process()
        assert self.dir is not None
        if not self._launch(self.dir / "data"):
            raise ServiceUnavailable(f"postgres did not restart:\n{self._log_tail()}")

    def stop(self) -> None:
        """Shut the server down and remove its directory; safe to call more than once."""
        self._stop_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # SIGINT: fast shutdown (disconnects clients); SIGQUIT: immediate; then SIGKILL.
            for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if sig is signal.SIGKILL:  # backends outlive a killed postmaster briefly: end them
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A throwaway Redis server (Debian's `redis-server`, no persistence); use as a context
    manager, or `start()` / `stop()`."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise ServiceUnavailable(
                "redis-server is not installed. Install it with scripts/ensure-services.sh "
                "(Debian's `redis-server` package).")
        self.binary = binary
        self.dir: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        try:
            _remove_stale_dirs()
            self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX + "redis-"))
            (self.dir / _OWNER_FILE).write_text(str(os.getpid()))
            for _attempt in range(5):  # a free port can be taken before redis binds it
                self.port = free_port()
                if self._launch():
                    return self.url
            raise ServiceUnavailable(f"redis-server did not start:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> bool:
        assert self.dir is not None
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "SIGKILL", *argv]
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                if "in use" in self._log_tail():
                    return False
                raise ServiceUnavailable(f"redis-server exited:\n{self._log_tail()}")
            if self._answers():
                return True
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"redis-server did not answer within {READY_TIMEOUT:.0f} s:\n"
                    f"{self._log_tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            log = (self.dir / "redis.log").read_text(errors="replace")
            return "\n".join(log.splitlines()[-lines:])
        except (OSError, TypeError):
            return "(no server log)"

    def restart(self) -> None:
        """Stops the server and starts it again, empty, on the same port."""
        self._stop_process()
        if not self._launch():
            raise ServiceUnavailable(f"redis-server did not restart:\n{self._log_tail()}")

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # nothing to keep: no persistence
            proc.wait(timeout=30)

    def stop(self) -> None:
        self._stop_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
