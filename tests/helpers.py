"""Shared test helpers: config builders, an SSE reader, waiting without fixed sleeps."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

ALWAYS_CLOSED: dict[str, list[str]] = {}
ALWAYS_OPEN = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def inventory_dict(venues: list[tuple[str, str, dict[str, list[str]], list[str]]]) -> dict[str, Any]:
    """venues: (venue id, township id, hours, device ids). Villages are one per venue."""
    townships: dict[str, list[dict[str, Any]]] = {}
    for venue_id, township, hours, devices in venues:
        townships.setdefault(township, []).append({
            "id": f"village-{venue_id}", "name": f"村{venue_id}",
            "venues": [{"id": venue_id, "name": f"场所{venue_id}", "hours": hours,
                        "devices": [{"id": d, "doors": ["front"]} for d in devices]}],
        })
    return {"county": {"id": "test-county", "name": "测试县"},
            "townships": [{"id": t, "name": f"镇{t}", "villages": v} for t, v in townships.items()]}


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


class SSEReader:
    """Reads a server-sent-event stream in a thread; events land in `self.events` as (type, data)."""

    def __init__(self, url: str, token: str, verify: str | bool = True) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any], float]] = queue.Queue()
        self.connected = threading.Event()
        self._response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=60,
                                      verify=verify)
        self._response.raise_for_status()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        kind, data = "message", []
        try:
            for raw in self._response.iter_lines(decode_unicode=True):
                self.connected.set()
                if raw == "":
                    if data:
                        self.events.put((kind, json.loads("\n".join(data)), time.monotonic()))
                    kind, data = "message", []
                elif raw.startswith("event:"):
                    kind = raw[6:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].strip())
        except (requests.exceptions.RequestException, OSError, ValueError, AttributeError):
            return  # the stream was closed under us: that is how close() ends this thread

    def next(self, type_: str, predicate: Callable[[dict[str, Any]], bool] = lambda d: True,
             timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {type_} event matching within {timeout}s")
            try:
                kind, data, _ = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if kind == type_ and predicate(data):
                return data

    def close(self) -> None:
        # Shut the socket down first: closing a response another thread is reading from would wait for the
        # next keep-alive (15 s).
        sock = _socket_of(self._response)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._response.close()
        self._thread.join(timeout=5)


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed requests response (http.client file → SocketIO → socket)."""
    fp = getattr(response.raw, "_fp", None)
    socket_io = getattr(getattr(fp, "fp", None), "raw", None)
    return getattr(socket_io, "_sock", None)


CDNET_CANDIDATES = (Path(__file__).resolve().parents[2] / "shared/data/cdnet-highway",
                    Path("/work/shared/data/cdnet-highway"))


def cdnet_frame(number: int) -> bytes:
    """A real camera frame (JPEG) of the CDnet 2014 highway sequence shipped beside the repository."""
    for base in CDNET_CANDIDATES:
        path = base / "input" / f"in{number:06d}.jpg"
        if path.exists():
            return path.read_bytes()
    raise FileNotFoundError(f"CDnet highway frames not found in {', '.join(map(str, CDNET_CANDIDATES))} "
                            "(see ../shared/data/cdnet-highway/README)")
