"""The agent's own numbers for Prometheus (`metrics.listen` in the device file): GET /metrics, text format 0.0.4.

Off by default. The standard library's HTTP server in a daemon thread: no dependency on a Pi, and a scrape
only reads counters the agent keeps anyway (`Agent.metric_families`). What each metric means:
docs/operations.md#scraping-the-agent.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from protocol.configfile import ConfigError

log = logging.getLogger("venuewatch.edge.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ListenError(ConfigError):
    """`metrics.listen` names an address this machine cannot listen on (in use, not its own, no permission)."""


@dataclass
class Family:
    """One metric: name, `gauge` or `counter`, help text, and (labels, value) samples."""

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, float(value)))
        return self


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (a counter's name ends in `_total`, as its samples')."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            pairs = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
            lines.append(f"{family.name}{{{pairs}}} {_number(value)}" if pairs else f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


class MetricsServer:
    """Binds at construction (a port in use is a ListenError naming `metrics.listen`), serves after `start`."""

    def __init__(self, host: str, port: int, collect: Callable[[], list[Family]]) -> None:
        self._collect = collect
        handler = type("Handler", (_Handler,), {"collect": staticmethod(collect)})
        try:
            self._http = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ListenError(f"metrics.listen: cannot listen on {where} ({exc.strerror or exc}); is another agent "
                              "or exporter using it? choose another port, or remove metrics.listen to turn the "
                              "endpoint off") from None
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=5)
        self._http.server_close()


class _Handler(BaseHTTPRequestHandler):
    collect: Callable[[], list[Family]]
    server_version = "venuewatch-agent"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, b"not found: the agent serves /metrics only\n")
            return
        try:
            body = render(self.collect()).encode()
        except Exception:  # a scrape must never take the agent down; the log says what broke
            log.exception("event=metrics_error")
            self._reply(500, b"metrics could not be collected; see the agent's log\n")
            return
        self._reply(200, body, CONTENT_TYPE)

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("event=metrics_request client=%s request=%s", self.client_address[0], format % args)
