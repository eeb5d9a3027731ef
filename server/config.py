"""Server configuration (`venuewatch server --config FILE`). Every key is in docs/configuration.md."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.config import BrokerSettings
from protocol.configfile import ConfigError, load_model
from server.escalation import EscalationPolicy
from server.notify import NotifySettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerBroker(BrokerSettings):
    client_id: str = Field("venuewatch-server", description="MQTT client id; the broker keeps its session "
                           "(`--role ingest --instance N` adds `-ingest-N`)")
    shared_group: str = Field("venuewatch-ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                              description="shared-subscription group of the ingest processes (`$share/<group>/`)")


class HttpSettings(_Strict):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    threads: int = Field(64, ge=4, le=1024, description="worker threads; each live console holds one")
    connection_limit: int = Field(0, ge=0, le=10_000, description="open connections accepted at once (0: threads "
                                  "+ 64); beyond it new consoles and API calls wait, so keep it above threads")
    secure_cookies: bool = Field(True, description="send the session cookie only over HTTPS")
    session_hours: float = Field(12, gt=0, le=24 * 7, description="log in again after this long")
    trusted_proxies: int = Field(0, ge=0, le=5, description="reverse proxies in front (1 behind nginx): "
                                 "the client address is then read from X-Forwarded-For")


class IngestSettings(_Strict):
    max_payload_bytes: int = Field(64 * 1024, ge=256, le=16 * 1024 * 1024, description="larger messages are rejected")
    max_snapshot_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024,
                                    description="larger snapshot pictures are rejected (keep it at or below the "
                                    "broker's max_packet_size)")


class RuleSettings(_Strict):
    door_held_open_minutes: float = Field(10, gt=0, le=24 * 60, description="closed-hours door open this long alerts")
    check_interval_s: float = Field(5, gt=0, le=300, description="how often timed rules are evaluated")
    late_after_s: float = Field(120, ge=10, le=86400, description="an event received this long after it happened "
                                "is marked late (its alert still fires, labelled late, with both times)")
    data_gap_minutes: float = Field(10, gt=0, le=7 * 24 * 60, description="a missing seq not filled within this "
                                    "long raises 数据缺失 (data gap)")
    clock_skew_s: float = Field(120, ge=5, le=86400, description="a device clock off by more than this raises "
                                "时钟偏差 (clock skew); its events are then re-based on the server's clock")
    chatter_changes: int = Field(10, ge=3, le=1000, description="a door contact changing this many times within "
                                 "chatter_window_s raises 传感器故障 (sensor fault)")
    chatter_window_s: float = Field(60, gt=0, le=3600, description="window for chatter_changes")
    door_no_motion_minutes: float = Field(30, gt=0, le=24 * 60, description="a door open this long while the camera "
                                          "covering it saw no motion raises 传感器故障")
    not_opened_minutes: float = Field(30, gt=0, le=24 * 60, description="no door or motion this long after a posted "
                                      "opening time raises 未按时开放 (venue not opened)")
    group_minutes: float = Field(10, gt=0, le=24 * 60, description="alerts at one venue within this long of each "
                                 "other are one incident: one notification, one escalation clock")
    severity: dict[str, str] = Field(default_factory=dict, description="severity per rule id, overriding the "
                                     "default (critical, high, medium, low)")

    @field_validator("severity")
    @classmethod
    def _severities(cls, value: dict[str, str]) -> dict[str, str]:
        from server.rules import RULES, SEVERITIES

        for rule, severity in value.items():
            if rule not in RULES:
                raise ValueError(f"{rule!r} is not a rule; rules are {', '.join(RULES)}")
            if severity not in SEVERITIES:
                raise ValueError(f"{rule}: {severity!r} is not a severity; use {', '.join(SEVERITIES)}")
        return value


class SupervisionSettings(_Strict):
    heartbeat_s: float = Field(15, ge=5, le=3600, description="the agents' heartbeat interval (device heartbeat_s)")
    grace_s: float = Field(30, ge=5, le=3600, description="a device silent for heartbeat_s + grace_s is offline")
    flap_window_minutes: float = Field(10, gt=0, le=24 * 60, description="a device that drops again within this "
                                       "long re-opens its offline alert instead of raising a new one")
    flap_drops: int = Field(5, ge=2, le=1000, description="this many drops in one alert mark the link unstable")

    @property
    def silent_after_s(self) -> float:
        return self.heartbeat_s + self.grace_s


class CalendarSettings(_Strict):
    extra_holidays: list[date] = Field(default_factory=list, description="statutory holidays the chinese-calendar "
                                       "package does not know yet (the next year is announced each November)")
    extra_workdays: list[date] = Field(default_factory=list, description="adjusted working days (调休) the package "
                                       "does not know yet")


class DutySettings(_Strict):
    roster: Path | None = Field(None, description="duty roster YAML (rooms, shifts, people); relative paths are "
                                "relative to this file. Without one, alerts reach the console only")
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy, description="minutes to each escalation "
                                         "step, per severity")


class ReportSettings(_Strict):
    build_after: str = Field("00:30", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                             description="local time (HH:MM) after which last night's reports are built; late "
                             "events still arriving just after midnight are then included")
    late_days: int = Field(7, ge=0, le=60, description="rebuild a report (new revision) when events of its day "
                           "arrive up to this many days later")
    lang: Literal["zh", "en"] = Field("zh", description="language of the stored PDFs (others are printed on demand)")
    enabled: bool = Field(True, description="build reports in this process (the scheduler role)")

    @property
    def build_time(self) -> time:
        return time.fromisoformat(self.build_after)


class PrivacySettings(_Strict):
    snapshot_days: int = Field(30, ge=0, le=3650, description="snapshot pictures are deleted this many days after "
                               "they arrived, daily; 0 keeps them forever (not recommended: they show people)")


class TimeseriesSettings(_Strict):
    enabled: bool = Field(False, description="send telemetry and sensor levels to a time-series server (InfluxDB 2 "
                          "or VictoriaMetrics); the per-minute rollups for the console's charts are kept either way")
    url: str = Field("http://127.0.0.1:8428", description="base URL of the server's InfluxDB v2 write API "
                     "(VictoriaMetrics: port 8428; InfluxDB 2: port 8086)")
    org: str = Field("venuewatch", min_length=1, description="InfluxDB organisation (VictoriaMetrics ignores it)")
    bucket: str = Field("venuewatch", min_length=1, description="InfluxDB bucket (VictoriaMetrics ignores it)")
    token_file: Path | None = Field(None, description="file holding the API token (mode 0600); none for a server "
                                    "without authentication. The token is never logged")
    batch_size: int = Field(5000, ge=1, le=50_000, description="lines per write request")
    flush_interval_s: float = Field(1.0, gt=0, le=60, description="how long the writer waits for more lines once "
                                    "the outbox is empty")
    timeout_s: float = Field(10.0, gt=0, le=300, description="one write request's timeout")
    retry_initial_s: float = Field(1.0, gt=0, le=3600, description="wait after the first failed write")
    retry_max_s: float = Field(60.0, gt=0, le=3600, description="longest wait between retries (the wait doubles "
                               "per failure up to this, with jitter)")
    max_outbox_rows: int = Field(5_000_000, ge=1000, le=1_000_000_000, description="lines kept while the server is "
                                 "unreachable; beyond this the oldest are dropped, counted and logged")
    rollup_days: int = Field(8, ge=1, le=400, description="days of per-minute rollups kept in SQL for the "
                             "console's charts (also when enabled is false)")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r}: use http://host:port or https://host:port, e.g. http://127.0.0.1:8428")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _retry_range(self) -> TimeseriesSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s}) is below retry_initial_s ({self.retry_initial_s})")
        return self


class ServerConfig(_Strict):
    broker: ServerBroker
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite file in data_dir")
    timezone: str = Field("Asia/Shanghai", description="IANA zone for opening hours and reports")
    inventory: Path = Field(description="inventory YAML (relative paths are relative to this file)")
    data_dir: Path = Field(Path("/var/lib/venuewatch"), description="database, secret key")
    http: HttpSettings = Field(default_factory=HttpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    supervision: SupervisionSettings = Field(default_factory=SupervisionSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    duty: DutySettings = Field(default_factory=DutySettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    timeseries: TimeseriesSettings = Field(default_factory=TimeseriesSettings)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"{value!r}: use sqlite:////path/file.db or postgresql+psycopg://user@host/db")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'venuewatch.db'}"


def load_server_config(path: str | Path) -> ServerConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the server config ({exc.strerror})") from None
    config = load_model(ServerConfig, text, str(path))
    base = path.parent
    updates: dict[str, object] = {"broker": config.broker.relative_to(base)}
    if not config.inventory.is_absolute():
        updates["inventory"] = base / config.inventory
    if not config.data_dir.is_absolute():
        updates["data_dir"] = base / config.data_dir
    updates["notify"] = config.notify.relative_to(base)
    token_file = config.timeseries.token_file
    if token_file is not None and not token_file.is_absolute():
        updates["timeseries"] = config.timeseries.model_copy(update={"token_file": base / token_file})
    if config.duty.roster is not None and not config.duty.roster.is_absolute():
        updates["duty"] = config.duty.model_copy(update={"roster": base / config.duty.roster})
    return config.model_copy(update=updates)
