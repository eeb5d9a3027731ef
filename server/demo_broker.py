"""The demo's embedded MQTT broker: amqtt (MQTT 3.1.1) on its own asyncio loop in a thread.

Production uses mosquitto (deploy/mosquitto/); this exists so `venuewatch demo` needs no services. It
listens on loopback only and allows anonymous clients, which is acceptable only because of that.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from protocol.configfile import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        # amqtt logs its own traceback when it cannot listen; we report that failure in one line instead.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("embedded MQTT broker did not start within 10 s")
        if self._error:
            raise ConfigError(f"--mqtt-port {self.port}: the embedded MQTT broker cannot listen there "
                              f"({self._error}); choose another port or leave it out to pick a free one")

    def _run(self) -> None:
        from amqtt.broker import Broker

        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        try:
            self._loop.run_until_complete(boot())
        except BaseException as exc:  # reported to the caller of start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is None or not self._loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            future.result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
