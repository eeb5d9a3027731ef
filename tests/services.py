"""Starting real services for tests and benchmarks: mosquitto on a free port with its own config."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


@dataclass
class Mosquitto:
    port: int
    process: subprocess.Popen
    workdir: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_mosquitto(workdir: Path, extra_config: str = "persistence false\n", nodelay: bool = True) -> Mosquitto:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        raise RuntimeError("mosquitto is not installed: apt-get install -y mosquitto (.ci/run does)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    # Started as root, mosquitto drops to its own user, which cannot write into pytest's private temp dirs.
    as_user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        as_user +
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "max_inflight_messages 100\n"
        "max_queued_messages 100000\n"
        f"set_tcp_nodelay {'true' if nodelay else 'false'}\n"  # as deploy/mosquitto: no Nagle delay on alerts
        f"log_dest file {workdir / 'mosquitto.log'}\n" + extra_config
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
    except RuntimeError:
        process.kill()
        raise
    return Mosquitto(port, process, workdir)


REPO = Path(__file__).resolve().parent.parent


def broker_credentials(work: Path, passwords: dict[str, str]) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and a mosquitto password file for
    `passwords` (user -> password), in `work`: what start_production_mosquitto needs. Returns (ca, key, passwd)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(work / "server.key"), "-out", str(work / "ca.crt"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    passwd = work / "passwd"
    for i, (user, password) in enumerate(passwords.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", *create, str(passwd),
                        user, password], check=True, capture_output=True)
    return work / "ca.crt", work / "server.key", passwd


def start_production_mosquitto(work: Path, ca: Path, cert: Path, key: Path,
                               passwd: Path, acl: Path = REPO / "deploy/mosquitto/acl") -> tuple[subprocess.Popen, int]:
    """deploy/mosquitto/venuewatch.conf as shipped (TLS, no anonymous, the ACL), on a free local port with the
    given certificate files, password file and ACL (default: the shipped one). Returns the process and its port."""
    port = free_port()
    conf = (REPO / "deploy/mosquitto/venuewatch.conf").read_text()
    conf = (conf.replace("listener 8883", f"listener {port} 127.0.0.1")
            .replace("/etc/mosquitto/certs/ca.crt", str(ca))
            .replace("/etc/mosquitto/certs/server.crt", str(cert))
            .replace("/etc/mosquitto/certs/server.key", str(key))
            .replace("/etc/mosquitto/venuewatch.passwd", str(passwd))
            .replace("/etc/mosquitto/venuewatch.acl", str(acl)))
    assert f"certfile {cert}" in conf and f"keyfile {key}" in conf, "the shipped config's paths changed"
    conf += f"persistence_location {work}/\nlog_dest file {work / 'mosquitto.log'}\n"
    if os.geteuid() == 0:
        conf += "user root\n"
    (work / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(work / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


@dataclass
class VictoriaMetrics:
    """Debian's victoria-metrics on a free local port, its data under `data_dir` (kept across restarts)."""

    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        if not os.path.exists(binary):
            raise RuntimeError("victoria-metrics is not installed: apt-get install -y victoria-metrics")
        with open(self.log, "ab") as log:
            # No query latency offset and no result cache: a test reads back what it has just written.
            self.process = subprocess.Popen(
                [binary, f"-storageDataPath={self.data_dir}", f"-httpListenAddr=127.0.0.1:{self.port}",
                 "-search.latencyOffset=0s", "-search.disableCache", "-retentionPeriod=100y"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self.process.returncode}; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                    if b" 200 " in sock.recv(64):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"victoria-metrics did not answer /health within {timeout}s; see {self.log}")

    def stop(self, kill: bool = False) -> None:
        """Stop it: SIGTERM flushes what it holds in memory; `kill` (SIGKILL) is a crash and may lose the
        last seconds it acknowledged."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None


def start_victoria_metrics(workdir: Path) -> VictoriaMetrics:
    workdir.mkdir(parents=True, exist_ok=True)
    vm = VictoriaMetrics(free_port(), workdir / "data", workdir / "victoria-metrics.log")
    vm.start()
    return vm
