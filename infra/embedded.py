"""The embedded development stack: a Kafka-compatible broker (noida-db) on 127.0.0.1.

Used when KAFKA_BOOTSTRAP_SERVERS is not set. State (data, log, pid file) lives in
``settings.data_dir``; only the process recorded in the pid file is ever stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings


class EmbeddedError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    address: str
    log: Path


def _noida_binary() -> str:
    """The noida-db executable itself, not its Python launcher: stopping the launcher by pid
    would leave the server running."""
    try:
        import noida_db
    except ImportError:
        raise EmbeddedError("noida-db is not installed: reinstall facestream (`make install`)") from None
    binary = Path(noida_db.__file__).parent / "noida-db"
    if not binary.exists():
        raise EmbeddedError(f"noida-db's executable is missing at {binary}: reinstall noida-db")
    return str(binary)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited one not yet reaped, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers signal 0.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _paths(s: Settings) -> tuple[Path, Path, Path]:
    root = s.data_dir.resolve() / "broker"
    return root, root / "noida.pid", root / "noida.log"


def broker_status(s: Settings) -> BrokerStatus:
    root, pidfile, log = _paths(s)
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    running = pid is not None and pid_alive(pid) and port_open("127.0.0.1", s.embedded_kafka_port)
    return BrokerStatus(running, pid if running else None, f"127.0.0.1:{s.embedded_kafka_port}", log)


def start_broker(s: Settings, timeout_s: float = 20.0) -> BrokerStatus:
    """Start the embedded broker unless ours is already running; wait until it accepts clients."""
    st = broker_status(s)
    if st.running:
        return st
    if port_open("127.0.0.1", s.embedded_kafka_port):
        raise EmbeddedError(
            f"port {s.embedded_kafka_port} is taken by another process. Set "
            "FACESTREAM_EMBEDDED_KAFKA_PORT to a free port, or KAFKA_BOOTSTRAP_SERVERS to use "
            "that broker."
        )
    root, pidfile, log = _paths(s)
    root.mkdir(parents=True, exist_ok=True)
    cmd = [_noida_binary(), "start", "--only", "kafka", "--host", "127.0.0.1",
           "--kafka-port", str(s.embedded_kafka_port), "--data-dir", str(root / "data")]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"noida-db exited with code {proc.returncode}; see {log}")
        if port_open("127.0.0.1", s.embedded_kafka_port):
            return broker_status(s)
        time.sleep(0.05)
    proc.terminate()
    raise EmbeddedError(f"noida-db did not open port {s.embedded_kafka_port} in {timeout_s:.0f} s; see {log}")


def stop_broker(s: Settings, timeout_s: float = 10.0) -> bool:
    """Stop the broker this project started (by its recorded pid). True if one was stopped."""
    _, pidfile, _ = _paths(s)
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text())
    pidfile.unlink()
    if not pid_alive(pid):
        return False
    # The broker leads its own process group (start_new_session): signal the group. SIGINT is
    # its Ctrl-C, the stop that saves its data; SIGTERM and SIGKILL only if it hangs.
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if not pid_alive(pid):
            break
    return True
