"""The shipped nginx site (deploy/nginx/venuewatch.conf) in front of a real server: TLS, the secure session
cookie, and a live stream that is not held back by proxy buffering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ALWAYS_CLOSED, SSEReader
from tests.server.conftest import event_payload
from tests.services import free_port, wait_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nginx(tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.fail("nginx is not installed: apt-get install -y nginx-light (.ci/run does)")

    def start(upstream_port: int) -> tuple[int, Path]:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        https, http = free_port(), free_port()
        site = (REPO / "deploy/nginx/venuewatch.conf").read_text()
        site = (site.replace("/etc/venuewatch/tls/console.crt", str(tmp_path / "c.pem"))
                .replace("/etc/venuewatch/tls/console.key", str(tmp_path / "k.pem"))
                .replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
                .replace("listen 80;", f"listen 127.0.0.1:{http};")
                .replace("127.0.0.1:8080", f"127.0.0.1:{upstream_port}"))
        (tmp_path / "site.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp_path / "nginx.conf").write_text(
            f"{user}daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n proxy_temp_path {tmp_path};\n"
            f" include {tmp_path}/site.conf;\n}}\n")
        started.append(subprocess.Popen([binary, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(https)
        return https, tmp_path / "c.pem"

    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_console_through_nginx_with_tls_and_unbuffered_stream(mosquitto, server_factory, nginx):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"])],
                         http={"secure_cookies": True, "trusted_proxies": 1})
    port, ca = nginx(int(srv.url.rsplit(":", 1)[1]))
    base = f"https://127.0.0.1:{port}"

    browser = requests.Session()
    browser.trust_env = False  # this machine's REQUESTS_CA_BUNDLE would override our CA
    browser.verify = str(ca)
    page = browser.get(base + "/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = browser.post(base + "/login", data={"username": "admin", "password": "correct horse battery",
                                                   "csrf": csrf}, allow_redirects=False)
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    assert "待处理告警" in browser.get(base + "/").text  # the secure cookie travels over TLS

    stream = SSEReader(base + "/api/v1/stream", srv.token, verify=str(ca))
    time.sleep(0.5)
    started = time.monotonic()
    srv.server.ingest.handle(f"{srv.root}/pi-a/event", event_payload("pi-a"))
    alert = stream.next("alert", timeout=5)
    assert alert["rule"] == "door_after_hours"
    # Had nginx buffered the stream, the alert would wait for a full buffer or the 15 s keep-alive.
    assert time.monotonic() - started < 2
    stream.close()
    assert requests.get(f"http://127.0.0.1:{port}", timeout=5).status_code == 400  # plain HTTP on the TLS port
