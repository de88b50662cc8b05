"""Start a private Mosquitto and InfluxDB 1.x on loopback, with data in a folder we own.

Used by ``make demo``, the test fixtures and the benchmarks, so all three run the same broker
and database configuration. Processes are stopped by the PID we started, never by name.

A port from :func:`free_port` is free when it is chosen, not necessarily when the service binds
it: a parallel test worker or a benchmark may take it in between. A service counts as started
only when its own process listens on its ports (another server answering there does not count),
and a service whose ports the caller left to us is started again on new ones when its port was
taken (:class:`PortInUse`), a few times at most.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = [
    "LocalService",
    "PortInUse",
    "PostgresService",
    "free_port",
    "in_workdir",
    "start_influxdb",
    "start_mosquitto",
    "start_postgres",
    "stop_process",
    "wait_for_listener",
    "wait_for_port",
]

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")
INFLUXD_CANDIDATES = ("influxd", "/usr/bin/influxd")
# Starts on new free ports after a port was taken under us (each failed start takes well under
# a second: the service exits as soon as its bind fails).
PORT_ATTEMPTS = 5
# What mosquitto, influxd and postgres all log when a bind fails on a taken port.
PORT_TAKEN_LOG = "address already in use"


Result = TypeVar("Result")


def in_workdir(workdir: Path | None, prefix: str, run: Callable[[Path], Result]) -> Result:
    """``run(folder)`` in ``workdir`` (made if missing, kept), else in a temporary folder that
    is removed afterwards: how every benchmark places its services' data and logs."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        return run(Path(folder))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(candidates: tuple[str, ...], package: str) -> str:
    for name in candidates:
        found = shutil.which(name) or (name if os.path.exists(name) else None)
        if found:
            return found
    raise FileNotFoundError(f"{candidates[0]} not found: install the Debian package '{package}' "
                            f"(sudo apt-get install {package}) or run 'make services'")


class PortInUse(RuntimeError):
    """A service could not listen on its port: another process had taken it."""


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None,
                  host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before "
                               f"listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s")


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes of the TCP listeners on ``port`` (any address), from /proc/net/tcp{,6};
    None where the system has no such table (not Linux)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    suffix = f":{port:04X}"
    inodes = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is field 9
                if len(fields) > 9 and fields[1].endswith(suffix) and fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def _process_tree(pid: int, limit: int = 200) -> list[int]:
    """``pid`` and its descendants (runuser starts postgres as its child)."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < limit:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(child) for child in children.read_text().split())
    return found


def _listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` (or a child of it) holds a listening socket on ``port``; None
    where /proc cannot tell."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for member in _process_tree(pid):
        folder = f"/proc/{member}/fd"
        try:
            descriptors = os.listdir(folder)
        except OSError:  # gone meanwhile
            continue
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                if os.readlink(f"{folder}/{descriptor}") in wanted:
                    return True
    return False


def wait_for_listener(process: subprocess.Popen[bytes], ports: list[int],
                      timeout_s: float) -> None:
    """Wait until ``process`` itself listens on every port in ``ports``.

    Another server answering on a port (one that took it between :func:`free_port` and our
    bind) does not count: our process then exits on its failed bind, which raises
    RuntimeError here, as a process that exits for any other reason does.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before "
                               f"listening on port(s) {', '.join(map(str, ports))}")
        owned = [_listens(process.pid, port) for port in ports]
        if all(answer is not False for answer in owned):  # None: /proc cannot tell, trust it
            return
        if time.monotonic() > deadline:
            missing = [port for port, answer in zip(ports, owned, strict=True) if not answer]
            raise TimeoutError(f"pid {process.pid} does not listen on port(s) "
                               f"{', '.join(map(str, missing))} after {timeout_s:.0f} s "
                               "(another process may hold them)")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 30.0,
                 signum: int = signal.SIGTERM) -> int | None:
    """Ask a process we started to stop (SIGTERM by default), SIGKILL it after ``timeout_s``.

    Returns its exit code (None when there was no process).
    """
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


@dataclass
class LocalService:
    name: str
    port: int
    data_dir: Path
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def ports(self) -> list[int]:
        """Every port the service listens on: its main port, then the extra ones."""
        return [self.port, *self.extra_ports.values()]

    def start(self, timeout_s: float = 30.0) -> LocalService:
        """Start the process and wait until it listens on all its ports; PortInUse when one
        was taken by another process (its log says so), RuntimeError for any other failure."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            wait_for_port(self.port, timeout_s, self.process)
            wait_for_listener(self.process, self.ports, timeout_s)
        except Exception as exc:
            self.stop()  # first: the log is complete once the process has exited
            with self.log_path.open("rb") as written:
                written.seek(log_start)
                tail = written.read().decode(errors="replace")[-2000:]
            failure = PortInUse if PORT_TAKEN_LOG in tail.lower() else RuntimeError
            raise failure(f"{self.name} did not start: {exc}\n--- {self.log_path}:\n{tail}"
                          ) from None
        except BaseException:  # Ctrl-C while waiting: never leave the process behind
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        process, self.process = self.process, None
        stop_process(process, 5.0, signal.SIGKILL)

    def restart(self, timeout_s: float = 30.0) -> LocalService:
        self.stop()
        return self.start(timeout_s)


def start_mosquitto(data_dir: Path, port: int | None = None, *, start: bool = True,
                    extra_config: str = "", password_file: Path | None = None,
                    tls_files: tuple[Path, Path, Path] | None = None) -> LocalService:
    """A broker that keeps persistent sessions and queues without limit (see docs/broker.md).

    ``password_file`` turns anonymous access off; ``tls_files`` (CA, certificate, key) adds a
    TLS listener on a second port, ``service.extra_ports["tls"]``. Ports not given are free
    ones, chosen again when one was taken before the broker bound it.
    """
    def configured() -> LocalService:
        return _mosquitto_service(data_dir, port or free_port(), free_port() if tls_files else None,
                                  extra_config, password_file, tls_files)

    if not start:
        return configured()
    return _start_on_free_ports(configured, retry=port is None or tls_files is not None)


def _mosquitto_service(data_dir: Path, port: int, tls_port: int | None, extra_config: str,
                       password_file: Path | None,
                       tls_files: tuple[Path, Path, Path] | None) -> LocalService:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "mosquitto.conf"
    security = "allow_anonymous true\n"
    if password_file is not None:
        security = f"allow_anonymous false\npassword_file {password_file}\n"
    if tls_files is not None:
        ca_file, cert_file, key_file = tls_files
        security += (f"listener {tls_port} 127.0.0.1\ncafile {ca_file}\ncertfile {cert_file}\n"
                     f"keyfile {key_file}\n")
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        + security +
        "persistence true\n"
        f"persistence_location {data_dir}/\n"
        "autosave_interval 1\n"
        # A persistent session's backlog must not be capped: the default (1000) drops messages.
        "max_queued_messages 0\n"
        "max_queued_bytes 0\n"
        "max_inflight_messages 0\n"
        "persistent_client_expiration 7d\n"
        # Run as root, mosquitto switches to user 'mosquitto', which cannot write our folder.
        + ("user root\n" if os.geteuid() == 0 else "")
        + "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        + extra_config
    )
    return LocalService("mosquitto", port, data_dir,
                        [_binary(MOSQUITTO_CANDIDATES, "mosquitto"), "-c", str(config)],
                        data_dir / "mosquitto.log",
                        extra_ports={"tls": tls_port} if tls_port else {})


def _start_on_free_ports(configured: Callable[[], LocalService], *, retry: bool) -> LocalService:
    """Start ``configured()``; when a port was taken and ``retry`` (some of its ports are ours
    to choose), configure it again on new free ports, up to PORT_ATTEMPTS times."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return configured().start()
        except PortInUse:
            if not retry or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def start_influxdb(data_dir: Path, port: int | None = None, *, start: bool = True) -> LocalService:
    """InfluxDB 1.x with its own HTTP port and its own RPC bind port (the top-level
    ``bind-address``, whose default :8088 every instance would share). Ports not given are free
    ones, chosen again when one was taken before influxd bound it."""
    def configured() -> LocalService:
        return _influxdb_service(data_dir, port or free_port(), free_port())

    if not start:
        return configured()
    service = _start_on_free_ports(configured, retry=True)
    try:
        _wait_influx_ready(service.port, timeout_s=30.0)
    except BaseException:  # not ready, or Ctrl-C: never leave the process behind
        service.stop()
        raise
    return service


def _influxdb_service(data_dir: Path, port: int, rpc_port: int) -> LocalService:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "influxdb.conf"
    config.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{data_dir}/meta"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{data_dir}/data"\n  wal-dir = "{data_dir}/wal"\n'
        '  query-log-enabled = false\n  trace-logging-enabled = false\n'
        '  cache-snapshot-memory-size = "64m"\n'
        '[coordinator]\n  log-queries-after = "0s"\n'
        '[monitor]\n  store-enabled = false\n'
        f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{port}"\n'
        '  auth-enabled = false\n  log-enabled = false\n  max-body-size = 0\n'
        '[continuous_queries]\n  log-enabled = false\n'
        '[subscriber]\n  enabled = false\n'
        '[logging]\n  level = "warn"\n'
    )
    return LocalService("influxdb", port, data_dir,
                        [_binary(INFLUXD_CANDIDATES, "influxdb"), "-config", str(config)],
                        data_dir / "influxdb.log", extra_ports={"rpc": rpc_port})


def _wait_influx_ready(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1.0).status_code == 204:
                return
        time.sleep(0.1)
    raise TimeoutError(f"InfluxDB on port {port} did not answer /ping")


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _postgres_bin(name: str) -> str:
    """``initdb`` / ``postgres`` of Debian's package (not on PATH: /usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"{name} not found: install the Debian package 'postgresql' "
                            "(sudo apt-get install postgresql) or run 'make services'")


@dataclass
class PostgresService(LocalService):
    """A throw-away PostgreSQL: ``url`` for its superuser ``kota`` (trust auth, loopback only)."""

    cluster_dir: Path | None = None
    private_cluster: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://kota@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://kota@127.0.0.1:{self.port}/{database}"

    def stop(self, timeout_s: float = 15.0) -> None:
        super().stop(timeout_s)
        if self.private_cluster and self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)


def start_postgres(data_dir: Path, port: int | None = None) -> PostgresService:
    """PostgreSQL on ``127.0.0.1:port`` with a fresh cluster, superuser ``kota``, trust auth.

    initdb and postgres refuse to run as root: as root both run as Debian's ``postgres`` user
    (``runuser``), and the cluster lives in a private folder under the system's temp folder that
    it owns (pytest's folders are closed to other users); :meth:`PostgresService.stop` removes
    it. Otherwise the cluster is ``data_dir/cluster``. Stopped by PID, like the others. Without
    ``port``, a free one, chosen again when it was taken before postgres bound it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    if as_root:
        cluster = Path(tempfile.mkdtemp(prefix="kota-postgres-"))
        shutil.chown(cluster, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    else:
        cluster = data_dir / "cluster"
        cluster.mkdir(exist_ok=True)
        run_as = []
    pgdata, sockets = cluster / "data", cluster / "sockets"
    log_path = data_dir / "postgres.log"
    try:
        subprocess.run([*run_as, "mkdir", "-p", str(sockets)], check=True, timeout=30)
        with log_path.open("ab") as log:
            subprocess.run([*run_as, _postgres_bin("initdb"), "-D", str(pgdata), "-U", "kota",
                            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                           stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        if as_root:
            shutil.rmtree(cluster, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc}\n--- {log_path}:\n{tail}") from None

    def configured() -> LocalService:
        listen_port = port or free_port()
        command = [*run_as, _postgres_bin("postgres"), "-D", str(pgdata), "-p", str(listen_port),
                   "-h", "127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
                   "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return PostgresService("postgres", listen_port, data_dir, command, log_path,
                               cluster_dir=cluster, private_cluster=False)

    service: PostgresService | None = None
    try:
        started = _start_on_free_ports(configured, retry=port is None)
        assert isinstance(started, PostgresService)
        service = started
        _wait_postgres_ready(service, 60.0)
    except BaseException:
        if service is not None:
            service.stop()
        if as_root:
            shutil.rmtree(cluster, ignore_errors=True)
        raise
    # Only now: a failed attempt's stop() above must not remove the cluster before the next.
    service.private_cluster = as_root
    return service


def _wait_postgres_ready(service: PostgresService, timeout_s: float) -> None:
    """The port opens before the cluster accepts logins ("the database system is starting
    up"): wait for a real login."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(service.url, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on port {service.port} did not accept a "
                                   f"login: {exc}") from None
        time.sleep(0.1)
