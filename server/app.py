"""Wires the server together: store, alert book, ingest, timed rules, web. Used by `server` and `demo`."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from waitress.server import create_server

from protocol.configfile import ConfigError
from server import audit
from server.admin.editor import InventoryAdmin
from server.admin.reload import InventoryWatcher, sync_inventory
from server.alerts import AlertBook
from server.arming import ArmingBook
from server.calendar import NationalCalendar
from server.config import ServerConfig
from server.duty import DutyDesk
from server.hub import Hub
from server.ingest import Ingest
from server.inventory import Inventory
from server.livefeed import LiveFeed, WorkerCounters
from server.mqttlink import MqttIngest
from server.notify import Dispatcher
from server.opening import OpeningCheck
from server.privacy import DailyRetention
from server.reports.archive import ReportArchive, ReportScheduler
from server.rollups import RollupRetention
from server.roster import RosterFile, load_checked_roster
from server.rules import OpenDoor, data_gap, device_status, doors_held_open, silent_devices
from server.store import (
    create_schema,
    device_status_log,
    devices,
    make_engine,
    sensor_states,
    startup_lock,
    streams,
)
from server.streams import Stream
from server.timeseries.outbox import InfluxSink, OutboxWriter, read_token
from server.timeseries.recorder import SeriesRecorder
from server.users import has_users
from server.web import (
    Services,
    create_app,
    new_secret_key,
    seriesapi,  # noqa: F401 (its routes join the api blueprint before any app registers it)
)

log = logging.getLogger("venuewatch.server")


def open_store(config: ServerConfig, inventory: Inventory) -> Engine:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.db_url())
    # Split into roles, several processes start at once: one of them migrates and syncs, the others wait.
    with startup_lock(engine, config.data_dir):
        create_schema(engine)
        sync_inventory(engine, inventory)
        seed_status_log(engine)
        audit.seal_unchained(engine)  # entries of a release before the hash chain join it, oldest first
    return engine


def seed_status_log(engine: Engine) -> int:
    """Give every device with a known status but no status history (a data dir from a release before the
    history existed) one row: its current status since it was set. Without it, the nightly reports would
    count such a device as offline until its next change."""
    with engine.begin() as conn:
        logged = select(device_status_log.c.device).distinct()
        rows = conn.execute(select(devices.c.id, devices.c.status, devices.c.status_at, devices.c.status_reason).where(
            devices.c.status.in_(("online", "offline")), devices.c.status_at.is_not(None),
            devices.c.id.not_in(logged))).all()
        if rows:
            conn.execute(insert(device_status_log), [
                {"device": r.id, "at": r.status_at, "status": r.status, "reason": r.status_reason} for r in rows])
    return len(rows)


def load_server_roster(config: ServerConfig, inventory: Inventory) -> RosterFile:
    """The duty roster, checked against the inventory and the notify channels (none: an empty roster)."""
    if config.duty.roster is None:
        return RosterFile()
    townships = {v.township_id for v in inventory.venues.values()}
    return load_checked_roster(config.duty.roster, townships, {c.name: c.type for c in config.notify.channels})


def load_secret_key(data_dir: Path) -> bytes:
    """The session signing key, created once with mode 0600 so sessions survive restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_bytes()
    key = new_secret_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _outbox_writer(engine: Engine, config: ServerConfig) -> OutboxWriter:
    ts = config.timeseries
    sink = InfluxSink(ts.url, ts.org, ts.bucket, read_token(ts.token_file), ts.timeout_s)
    return OutboxWriter(engine, sink, batch_size=ts.batch_size, flush_interval_s=ts.flush_interval_s,
                        max_rows=ts.max_outbox_rows, retry_initial_s=ts.retry_initial_s, retry_max_s=ts.retry_max_s)


def _synthetic_id(row: Any) -> str:
    # A door found open by a retained state message (no event) still needs a stable alert key.
    return f"{row.device}:{row.sensor}:{int(row.since.timestamp())}"


ROLES = ("all", "ingest", "web", "scheduler")


class VenueWatchServer:
    """The server, or one role of it.

    - `all` (the default): ingest, timed rules and web in one process; consoles are fed in memory.
    - `ingest`: one of N processes sharing the broker's messages (`$share/…`, `instance` names its session).
    - `scheduler`: timed rules, notifications, nightly reports, time-series export, retention (run one).
    - `web`: the console and the API (run one or more behind nginx).
    Split, the processes tell each other's consoles what changed over the broker (server/livefeed.py), and
    the database makes each alert fire once (unique keys in `alerts`).
    """

    def __init__(self, config: ServerConfig, inventory: Inventory, *, role: str = "all", instance: int = 1,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if role not in ROLES:
            raise ConfigError(f"--role: {role!r} is not a role; use one of {', '.join(ROLES)}")
        self.config = config
        self.inventory = inventory
        self.role = role
        self._now = now
        ingests, schedules, serves = role in ("all", "ingest"), role in ("all", "scheduler"), role in ("all", "web")
        self.engine = open_store(config, inventory)
        # Every role takes a changed inventory file (the 管理 pages, `provision device`) without a restart.
        self.inventory_watcher = InventoryWatcher(config.inventory, inventory, self.engine, config.data_dir)
        self.hub = Hub()
        self.book = AlertBook(self.engine, self.hub, inventory, severities=config.rules.severity,
                              group_window=timedelta(minutes=config.rules.group_minutes),
                              policy=config.duty.escalation)
        self.national = NationalCalendar(config.calendar.extra_holidays, config.calendar.extra_workdays)
        self.arming = ArmingBook(self.engine, inventory, config.tz, self.national, now)
        self.ingest = Ingest(self.engine, inventory, self.book, self.hub, config.tz,
                             config.ingest.max_payload_bytes, root=config.broker.root, now=now,
                             rules=config.rules, supervision=config.supervision,
                             snapshot_dir=config.data_dir / "snapshots",
                             max_snapshot_bytes=config.ingest.max_snapshot_bytes, armed=self.arming.armed_at,
                             series=SeriesRecorder(inventory, outbox=config.timeseries.enabled,
                                                   rollup_days=config.timeseries.rollup_days),
                             shared=role == "ingest")
        # The outbox is drained by the one process that runs the timed rules.
        self.timeseries = (_outbox_writer(self.engine, config) if config.timeseries.enabled and schedules else None)
        self.mqtt = (MqttIngest(self.ingest, config.broker, instance if role == "ingest" else None) if ingests
                     else None)
        # Web and scheduler keep the latest counters of every ingest process (their /metrics, their silence rule).
        self.workers = WorkerCounters(self.ingest.counters) if role in ("web", "scheduler") else None
        name = f"{config.broker.client_id}-{role}" + (f"-{instance}" if role == "ingest" else "")
        self.feed = (LiveFeed(config.broker, self.hub, role, name, workers=self.workers,
                              counters=(lambda: (self.ingest.counters.snapshot(), self.ingest.store_ok))
                              if role == "ingest" else None, session=self.mqtt.session if self.mqtt else None)
                     if role != "all" else None)
        roster = load_server_roster(config, inventory)
        # Notifications are sent by the process that runs the timed rules; the others only enqueue.
        self.dispatcher = Dispatcher(self.engine, config.notify, now=now) if schedules else None
        publish_command = self.mqtt.publish_command if self.mqtt else self.feed.publish_command if self.feed else None
        self.duty = DutyDesk(self.engine, inventory, self.book, roster, config.notify, self.arming, config.tz, now,
                             dispatcher=self.dispatcher, publish_command=publish_command)
        self.opening = OpeningCheck(self.engine, inventory, self.book, self.arming, self.national, config.tz,
                                    timedelta(minutes=config.rules.not_opened_minutes),
                                    timedelta(minutes=config.rules.door_no_motion_minutes), now)
        self.reports = ReportArchive(self.engine, inventory, self.national, config.tz, config.data_dir, roster,
                                     config.reports.lang, now)
        self.report_scheduler = (ReportScheduler(self.reports, config.reports.build_time, config.reports.late_days)
                                 if schedules and config.reports.enabled else None)
        missing = self.national.missing_years({now().year, (now() + timedelta(days=40)).year})
        if missing:
            log.warning("event=holiday_data_missing years=%s hint=add calendar.extra_holidays/extra_workdays or "
                        "upgrade chinese-calendar", missing)
        self._stop = threading.Event()
        self._started_at = now()
        self._opening_checked: datetime | None = None
        self.retention = DailyRetention(self.engine, config.privacy.snapshot_days)
        self.rollup_retention = RollupRetention(self.engine, config.timeseries.rollup_days)
        self._threads: list[threading.Thread] = []
        self.http = None
        self.app = None
        if serves:
            link = self.mqtt or self.feed
            assert link is not None
            services = Services(self.engine, inventory, self.book, self.hub, self.workers or self.ingest.counters,
                                config.tz, broker_connected=link.connected.is_set,
                                store_ok=self.workers.store_ok if self.workers else lambda: self.ingest.store_ok,
                                duty=self.duty, reports=self.reports,
                                admin=InventoryAdmin(self.engine, self.inventory_watcher, now))
            self.app = app = create_app(services, load_secret_key(config.data_dir),
                             secure_cookies=config.http.secure_cookies, session_hours=config.http.session_hours,
                                        trusted_proxies=config.http.trusted_proxies)
            if not has_users(self.engine):
                log.warning("event=no_accounts hint=create the first admin on this server: venuewatch user add "
                            "NAME --role county_admin (then add the others from the console's 管理 page)")
            # /metrics reports the time-series writer's counters where it runs in this process (role all).
            app.extensions["venuewatch.timeseries"] = self.timeseries
            try:
                # waitress accepts only 100 connections by default, fewer than the consoles `threads` allows.
                limit = config.http.connection_limit or config.http.threads + 64
                self.http = create_server(app, host=config.http.host, port=config.http.port,
                                          threads=config.http.threads, connection_limit=limit, channel_timeout=300,
                                          ident="venuewatch")
            except OSError as exc:
                raise ConfigError(f"http: cannot listen on {config.http.host}:{config.http.port} ({exc.strerror}); "
                                  "is another server running? choose another port (http.port in the server file, "
                                  "--http-port for the demo)") from None

    @property
    def url(self) -> str:
        assert self.http is not None
        host = self.config.http.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.http.effective_port}"

    def start(self) -> None:
        if self.feed:
            self.feed.start()
        if self.mqtt:
            self.mqtt.start()
        if self.dispatcher:
            self.dispatcher.start()
        if self.timeseries:
            self.timeseries.start()
        self._spawn("inventory-watch", lambda: self.inventory_watcher.run(self._stop))
        if self.role in ("all", "scheduler"):
            self._spawn("timed-rules", self._timed_rules_loop)
        if self.report_scheduler:
            self.report_scheduler.start()
        if self.http:
            self._spawn("http", self._serve_http)
            log.info("event=web_started url=%s", self.url)

    def _serve_http(self) -> None:
        assert self.http is not None
        try:
            self.http.run()
        except OSError:
            # stop() closes the sockets under waitress's select loop, which then fails with EBADF: expected.
            if not self._stop.is_set():
                raise

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.mqtt:
            self.mqtt.stop()
        if self.dispatcher:
            self.dispatcher.stop()
        if self.report_scheduler:
            self.report_scheduler.stop()
        if self.timeseries:
            self.timeseries.stop()
        if self.feed:
            self.feed.stop()
        self.hub.close()
        if self.http:
            self.http.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.engine.dispose()

    def check_timed_rules(self) -> int:
        """Evaluate rules that fire on time passing rather than on a message; returns alerts opened."""
        opened = self._check_doors() + self._check_silence() + self._check_gaps() + self.duty.check()
        now = self._now()
        # The opening checks read a day of history: once a minute is plenty for a 30-minute rule.
        if self._opening_checked is None or now - self._opening_checked >= timedelta(seconds=60):
            self._opening_checked = now
            opened += self.opening.check()
        self.retention.check(now)
        self.rollup_retention.check(now)
        return opened

    def _check_silence(self) -> int:
        """设备离线 for a device that stopped talking without a Last Will (power cut: the broker waits 1.5
        keepalives before it sends the will; the heartbeat timeout is usually faster)."""
        listening = self._listening_since()
        if listening is None:
            return 0  # not connected to the broker ourselves: silence means nothing now
        now = self._now()
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices.c.id, devices.c.last_seen).where(
                (devices.c.status == "online") & devices.c.last_seen.is_not(None))).all()
        silent_after = timedelta(seconds=self.config.supervision.silent_after_s)
        flap = timedelta(minutes=self.config.supervision.flap_window_minutes)
        opened = 0
        last_heard = {r.id: r.last_seen for r in rows}
        for device in silent_devices(list(last_heard.items()), listening, now, silent_after):
            with self.engine.begin() as conn:
                seen = last_heard[device]
                changed = conn.execute(update(devices).where(  # unless it spoke since we looked
                    (devices.c.id == device) & (devices.c.status == "online") & (devices.c.last_seen == seen)).values(
                    status="offline", status_at=now, status_reason="silent")).rowcount
                if changed:
                    conn.execute(insert(device_status_log).values(device=device, at=now, status="offline",
                                                                  reason="silent"))
            if not changed:
                continue  # a message arrived meanwhile
            venue = self.inventory.venues[self.inventory.device_venue[device]]
            log.warning("event=device_silent device=%s", device)
            self.hub.publish("state", venue.id, {"venue": venue.id, "device": device, "status": "offline",
                                                 "since": now.isoformat()})
            decision = device_status(device, venue, "offline", now, "silent", flap, self.config.supervision.flap_drops)
            opened += self.book.apply(decision) is not None
        return opened

    def _listening_since(self) -> datetime | None:
        """Since when the server has surely been hearing the devices (None: not now, silence means nothing)."""
        if self.mqtt:
            return self.mqtt.listening_since
        if self.role == "scheduler" and self.feed and self.workers is not None:  # the ingest processes too
            return self.feed.connected_since if self.workers.alive() else None
        return self._started_at

    def _check_gaps(self) -> int:
        now = self._now()
        timeout = timedelta(minutes=self.config.rules.data_gap_minutes)
        with self.engine.connect() as conn:
            rows = conn.execute(select(streams).where(
                streams.c.gap_since.is_not(None) & (streams.c.gap_alerted == False))).all()  # noqa: E712
        opened = 0
        for row in rows:
            venue = self.inventory.venues.get(self.inventory.device_venue.get(row.device, ""))
            if venue is None:
                continue
            missing = Stream(row.journal, row.contig, tuple(tuple(r) for r in row.pending)).missing
            decision = data_gap(row.device, venue, row.gap_since, missing, now, timeout)
            if decision is None:
                continue
            with self.engine.begin() as conn:
                claimed = conn.execute(update(streams).where(  # only if the gap is still the one we saw
                    (streams.c.device == row.device) & (streams.c.gap_alerted == False)  # noqa: E712
                    & (streams.c.gap_since == row.gap_since)).values(gap_alerted=True)).rowcount
            if not claimed:
                continue
            try:
                opened += self.book.apply(decision) is not None
            except Exception:
                with self.engine.begin() as conn:  # let the next check try again
                    conn.execute(update(streams).where(streams.c.device == row.device).values(gap_alerted=False))
                raise
        return opened

    def _check_doors(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sensor_states).where(
                (sensor_states.c.kind == "door") & (sensor_states.c.state == "open"))).all()
        open_doors = [OpenDoor(r.device, r.sensor, r.since, r.event_id or _synthetic_id(r)) for r in rows]
        limit = timedelta(minutes=self.config.rules.door_held_open_minutes)
        opened = 0
        for decision in doors_held_open(open_doors, self.inventory.venues, self.inventory.device_venue,
                                        self._now(), limit, self.arming.armed_at):
            opened += self.book.apply(decision) is not None
        return opened

    def _timed_rules_loop(self) -> None:
        while not self._stop.wait(self.config.rules.check_interval_s):
            try:
                self.check_timed_rules()
            except Exception:
                log.exception("event=timed_rules_error")
