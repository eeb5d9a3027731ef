"""Notifications against real receivers: a local HTTP server for the robots and the webhook, aiosmtpd for mail.

Time is injected: backoff is tested by moving the clock, never by sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError
from sqlalchemy import select

from protocol.configfile import describe
from server.notify import ChannelSettings, Dispatcher, NotifySettings, Outbox, message, render
from server.notify.channels import WECOM_MAX_BYTES
from server.store import create_schema, make_engine, notifications
from tests.helpers import wait_for
from tests.services import free_port

T0 = datetime(2026, 11, 26, 15, 5, tzinfo=UTC)  # 23:05 in Asia/Shanghai
ALERT = {
    "id": 7, "rule": "door_after_hours", "title": "非开放时段开门", "severity": "high", "status": "open",
    "venue": "v-qingshan", "venue_name": "青山村党群服务中心", "village_name": "青山村", "township": "t-chengguan",
    "township_name": "城关镇", "device": "pi-0007", "sensor": "front", "opened_at": T0.isoformat(),
    "detail": {}, "incident_id": 3,
}


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Receiver:
    """A real HTTP server standing in for DingTalk, WeCom and webhook receivers; records every request."""

    ROBOT_OK = (200, {"errcode": 0, "errmsg": "ok"})

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, Any]] = []  # consumed first, then ROBOT_OK
        self.delay_s = 0.0  # answer this late: a slow robot
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    status, answer = receiver.replies.pop(0) if receiver.replies else receiver.ROBOT_OK
                    parts = urlsplit(self.path)
                    receiver.requests.append({
                        "path": parts.path, "raw_query": parts.query, "query": parse_qs(parts.query),
                        "content_type": self.headers["Content-Type"], "raw": body, "json": json.loads(body),
                        "status": status, "ok": status == 200 and answer.get("errcode", 0) == 0,
                        "at": time.monotonic()})
                time.sleep(receiver.delay_s)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["ok"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    create_schema(engine)
    yield engine
    engine.dispose()


def webhook(receiver: Receiver, name: str = "hook", **extra: Any) -> ChannelSettings:
    return ChannelSettings(name=name, type="webhook", url=receiver.url(f"/hooks/{name}"), timeout_s=2, **extra)


def dispatcher(engine, channels: list[ChannelSettings], clock: Clock | None = None, **settings: Any) -> Dispatcher:
    kwargs = {"now": clock} if clock else {}
    return Dispatcher(engine, NotifySettings(channels=channels, **settings), **kwargs)


def enqueue(d: Dispatcher, channel: ChannelSettings, key: str, reason: str = "new", recipient: str = "") -> bool:
    msg = message(ALERT, reason, channel.lang, now=T0)
    return d.outbox.enqueue(key, channel, recipient, ALERT["severity"], msg, alert_id=ALERT["id"],
                            incident_id=ALERT["incident_id"])


def rows(engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(notifications).order_by(notifications.c.id)).all()


# --- request formats ----------------------------------------------------------------------------------


def test_dingtalk_markdown_with_signature(engine, receiver, tmp_path):
    secret = "SEC0123456789abcdef+/=test"
    (tmp_path / "ding.secret").write_text(secret + "\n")
    channel = ChannelSettings(name="county-ding", type="dingtalk", secret_file=tmp_path / "ding.secret",
                              url=receiver.url("/robot/send?access_token=tok123"))
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "a7:new:county-ding")
        assert d.run_once() == 1

    [req] = receiver.requests
    assert req["path"] == "/robot/send"
    assert req["query"]["access_token"] == ["tok123"]
    assert req["content_type"].startswith("application/json")
    timestamp = req["query"]["timestamp"][0]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000  # DingTalk refuses stamps an hour off
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert req["query"]["sign"] == [expected]
    assert f"sign={quote(expected, safe='')}" in req["raw_query"]  # URL-encoded once
    body = req["json"]
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "【高】非开放时段开门 · 青山村党群服务中心"
    assert "城关镇 · 青山村 · 青山村党群服务中心" in body["markdown"]["text"]
    assert "青山村党群服务中心".encode() in req["raw"]  # UTF-8 on the wire, not \u escapes


def test_dingtalk_without_secret_sends_no_signature(engine, receiver):
    channel = ChannelSettings(name="ding", type="dingtalk", url=receiver.url("/robot/send?access_token=t"))
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "k")
        assert d.run_once() == 1
    assert set(receiver.requests[0]["query"]) == {"access_token"}


def test_wecom_markdown_content_is_truncated_on_a_character_boundary(engine, receiver):
    channel = ChannelSettings(name="wecom", type="wecom", url=receiver.url("/cgi-bin/webhook/send?key=k-1"))
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "short")
        d.outbox.enqueue("long", channel, "", "high", {"title": "标题", "text": "很长的内容" * 1000})
        assert d.run_once() == 2

    short, long = receiver.requests
    assert short["path"] == "/cgi-bin/webhook/send" and short["query"]["key"] == ["k-1"]
    assert short["json"]["msgtype"] == "markdown"
    msg = message(ALERT, "new", now=T0)
    assert short["json"]["markdown"] == {"content": msg["title"] + "\n" + msg["text"]}
    content = long["json"]["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MAX_BYTES
    assert content.startswith("标题\n很长的内容") and content.endswith("…")


def test_webhook_posts_title_text_alert_and_reason(engine, receiver):
    channel = webhook(receiver, lang="en")
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "k", reason="escalate_county")
        assert d.run_once() == 1
    req = receiver.requests[0]
    assert req["path"] == "/hooks/hook" and req["content_type"].startswith("application/json")
    assert set(req["json"]) == {"title", "text", "alert", "reason"}
    assert req["json"]["alert"] == ALERT
    assert req["json"]["reason"] == "escalate_county"
    assert "Escalated to the county duty centre" in req["json"]["text"]


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret-mail"
        if isinstance(data, LoginPassword):
            self.logins.append((data.login, data.password))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


def test_email_through_a_real_smtp_server(engine, smtp_server, tmp_path):
    box, port = smtp_server
    (tmp_path / "smtp.pw").write_text("s3cret-mail\n")
    channel = ChannelSettings(name="mail", type="email", smtp={
        "host": "127.0.0.1", "port": port, "security": "none", "username": "venuewatch",
        "password_file": tmp_path / "smtp.pw", "sender": "venuewatch@example.gov.cn"})
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "k", reason="renotify", recipient="zhang.san@example.gov.cn")
        assert d.run_once() == 1

    [envelope] = box.envelopes
    assert box.logins == [(b"venuewatch", b"s3cret-mail")]
    assert envelope.rcpt_tos == ["zhang.san@example.gov.cn"]
    mail = message_from_bytes(envelope.original_content, policy=policy.default)
    assert mail["Subject"] == "【高】非开放时段开门 · 青山村党群服务中心"
    assert mail["To"] == "zhang.san@example.gov.cn" and mail["From"] == "venuewatch@example.gov.cn"
    body = mail.get_body(("plain",)).get_content()
    assert "未确认提醒" in body and "城关镇 · 青山村 · 青山村党群服务中心" in body


def test_email_with_a_wrong_password_is_kept_with_a_clear_error(engine, smtp_server, tmp_path):
    _box, port = smtp_server
    (tmp_path / "smtp.pw").write_text("wrong")
    channel = ChannelSettings(name="mail", type="email", smtp={
        "host": "127.0.0.1", "port": port, "security": "none", "username": "venuewatch",
        "password_file": tmp_path / "smtp.pw", "sender": "venuewatch@example.gov.cn"})
    clock = Clock()
    with dispatcher(engine, [channel], clock) as d:
        enqueue(d, channel, "k", recipient="li.si@example.gov.cn")
        assert d.run_once() == 0
    [row] = rows(engine)
    assert row.status == "pending" and row.attempts == 1
    assert "email channel 'mail': login refused" in row.last_error and "smtp.password_file" in row.last_error
    assert row.due_at == clock.now + timedelta(seconds=600)  # not fixable by retrying: the max interval


# --- retries: nothing dropped, nothing sent twice -------------------------------------------------------


def test_receiver_errors_back_off_then_every_message_arrives_once(engine, receiver):
    receiver.replies = [(500, {"error": "down"}), (503, {"error": "down"})]
    channel = webhook(receiver)
    clock = Clock()
    with dispatcher(engine, [channel], clock) as d:
        for i in range(3):
            enqueue(d, channel, f"k{i}")
        assert d.run_once() == 0
        assert len(receiver.requests) == 1  # the lane stops at the first failure instead of hammering
        stats = d.outbox.stats()
        assert (stats["pending"], stats["failing"]) == (3, 1)
        assert stats["oldest_pending_at"] == T0
        assert "webhook channel 'hook': HTTP 500" in stats["failing_channels"]["hook"]

        clock.advance(9.9)
        assert d.run_once() == 0 and len(receiver.requests) == 1  # not before the backoff
        clock.advance(0.1)
        assert d.run_once() == 0 and len(receiver.requests) == 2  # 503: second failure, backoff doubles
        clock.advance(19.9)
        assert d.run_once() == 0 and len(receiver.requests) == 2
        clock.advance(0.1)
        assert d.run_once() == 3
        assert d.run_once() == 0

    delivered = receiver.delivered()
    assert len(delivered) == 3 == len(rows(engine))
    assert sorted(r["json"]["alert"]["id"] for r in delivered) == [7, 7, 7]
    assert [r.status for r in rows(engine)] == ["sent"] * 3
    assert d.outbox.stats() | {"failing_channels": None} == {
        "pending": 0, "sent": 3, "failing": 0, "oldest_pending_at": None, "failing_channels": None}


def test_dingtalk_rate_limit_errcode_is_retried(engine, receiver):
    receiver.replies = [(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})]
    channel = ChannelSettings(name="ding", type="dingtalk", url=receiver.url("/robot/send?access_token=t"))
    clock = Clock()
    with dispatcher(engine, [channel], clock) as d:
        enqueue(d, channel, "k")
        assert d.run_once() == 0
        [row] = rows(engine)
        assert "errcode 130101" in row.last_error and "20 messages a minute" in row.last_error
        assert "access_token" not in row.last_error
        clock.advance(10)
        assert d.run_once() == 1
    assert len(receiver.requests) == 2 and len(receiver.delivered()) == 1


def test_dingtalk_security_rejection_says_what_to_check(engine, receiver):
    receiver.replies = [(200, {"errcode": 310000, "errmsg": "sign not match"})]
    channel = ChannelSettings(name="ding", type="dingtalk", url=receiver.url("/robot/send?access_token=t"))
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "k")
        d.run_once()
    [row] = rows(engine)
    assert row.status == "pending" and row.due_at == T0 + timedelta(seconds=10)  # still retried
    assert "310000" in row.last_error and "secret_file" in row.last_error and "keyword" in row.last_error


def test_nothing_listening_then_the_receiver_comes_up(engine):
    port = free_port()
    channel = ChannelSettings(name="hook", type="webhook", url=f"http://127.0.0.1:{port}/in?key=secret-key",
                              timeout_s=2)
    clock = Clock()
    with dispatcher(engine, [channel], clock) as d:
        for i in range(4):
            assert enqueue(d, channel, f"k{i}")
        assert d.run_once() == 0
        [first, *rest] = rows(engine)
        assert "webhook channel 'hook': cannot connect" in first.last_error
        assert "secret-key" not in first.last_error and str(port) not in first.last_error
        assert all(r.status == "pending" and r.attempts == 0 for r in rest)

        up = Receiver(port)
        try:
            clock.advance(10)
            assert d.run_once() == 4
            clock.advance(3600)
            assert d.run_once() == 0
            assert len(up.requests) == len(up.delivered()) == 4
        finally:
            up.stop()


def test_after_a_week_of_failures_it_still_retries_every_retry_max_s(engine, receiver):
    receiver.replies = [(503, {})]
    channel = webhook(receiver)
    with dispatcher(engine, [channel], Clock()) as d:
        enqueue(d, channel, "k")
        with engine.begin() as conn:
            conn.execute(notifications.update().values(attempts=2000))
        assert d.run_once() == 0
    [row] = rows(engine)
    assert row.attempts == 2001 and row.due_at == T0 + timedelta(seconds=600)


def test_enqueueing_the_same_key_twice_stores_one_row(engine, receiver):
    channel = webhook(receiver)
    with dispatcher(engine, [channel], Clock()) as d:
        assert enqueue(d, channel, "a7:new:hook") is True
        assert enqueue(d, channel, "a7:new:hook") is False
        assert d.outbox.pending() == 1
        assert d.run_once() == 1
        assert enqueue(d, channel, "a7:new:hook") is False  # also after it was sent
        assert d.run_once() == 0
    assert len(receiver.requests) == 1


def test_enqueue_inside_the_callers_transaction(engine, receiver):
    channel = webhook(receiver)
    with dispatcher(engine, [channel], Clock()) as d:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            d.outbox.enqueue("rolled-back", channel, "", "high", {"title": "t", "text": "x"}, conn=conn)
            raise RuntimeError("the caller's transaction fails")
        with engine.begin() as conn:
            assert d.outbox.enqueue("kept", channel, "", "high", {"title": "t", "text": "x"}, conn=conn)
        assert [r.key for r in rows(engine)] == ["kept"]


def test_a_client_error_is_kept_at_the_max_interval_and_the_lane_goes_on(engine, receiver):
    receiver.replies = [(404, {"error": "no such hook"})]
    channel = webhook(receiver)
    clock = Clock()
    with dispatcher(engine, [channel], clock, retry_max_s=300) as d:
        enqueue(d, channel, "k1")
        enqueue(d, channel, "k2")
        assert d.run_once() == 1  # a 404 says nothing about the next message
    first, second = rows(engine)
    assert first.status == "pending" and first.due_at == T0 + timedelta(seconds=300)
    assert "HTTP 404" in first.last_error and "check url" in first.last_error
    assert second.status == "sent"


def test_a_row_for_a_channel_no_longer_configured_stays_pending(engine, receiver):
    gone = webhook(receiver, name="old-hook")
    with dispatcher(engine, [webhook(receiver)], Clock()) as d:
        d.outbox.enqueue("k", gone, "", "high", {"title": "t", "text": "x"})
        assert d.run_once() == 0
    [row] = rows(engine)
    assert row.status == "pending" and row.last_error.startswith("channel 'old-hook' is not configured")
    assert row.due_at == T0 + timedelta(seconds=600)
    assert receiver.requests == []


def test_a_message_stored_without_text_is_rendered_at_send_time_in_the_channels_language(engine, receiver):
    channel = webhook(receiver, lang="en")
    clock = Clock(T0 + timedelta(minutes=12))
    with dispatcher(engine, [channel], clock, console_url="https://vw.example.gov.cn/") as d:
        d.outbox.enqueue("k", channel, "", "high", {"alert": ALERT, "reason": "renotify"})
        assert d.run_once() == 1
    text = receiver.requests[0]["json"]["text"]
    assert "Not acknowledged for 12 min" in text and "(https://vw.example.gov.cn/)" in text


def test_a_robot_gets_at_most_twenty_messages_a_minute(engine, receiver):
    channel = ChannelSettings(name="ding", type="dingtalk", url=receiver.url("/robot/send?access_token=t"))
    clock = Clock()
    with dispatcher(engine, [channel], clock) as d:
        for i in range(25):
            enqueue(d, channel, f"k{i}")
        assert d.run_once() == 20
        assert d.run_once() == 0  # held back, not failed: DingTalk would block the robot for 10 minutes
        assert d.outbox.stats()["failing"] == 0
        clock.advance(60)
        assert d.run_once() == 5
    assert len(receiver.requests) == 25


# --- leases and concurrent dispatchers ---------------------------------------------------------------------


def test_a_claim_expires_so_a_crashed_dispatcher_does_not_strand_a_row(engine, receiver):
    channel = webhook(receiver)
    clock = Clock()
    crashed = Outbox(engine, clock, lease_s=60)
    crashed.enqueue("k", channel, "", "high", {"title": "t", "text": "x"})
    assert len(crashed.claim_due(10)) == 1  # ... and the process dies before sending
    with dispatcher(engine, [channel], clock) as d:
        assert d.run_once() == 0
        assert d.outbox.next_due() == T0 + timedelta(seconds=60)
        clock.advance(60.001)
        assert d.run_once() == 1
    assert len(receiver.requests) == 1


def test_two_dispatchers_on_one_database_send_each_message_once(tmp_path, receiver):
    url = f"sqlite:///{tmp_path}/t.db"
    engines = [make_engine(url), make_engine(url)]
    create_schema(engines[0])
    hooks = [webhook(receiver, "hook-a"), webhook(receiver, "hook-b")]
    first, second = (dispatcher(e, hooks) for e in engines)
    try:
        first.start()
        second.start()
        for i in range(60):
            d = (first, second)[i % 2]
            d.outbox.enqueue(f"k{i}", hooks[i % 2], "", "high", {"title": f"消息 {i}", "text": "x"})
            d.wake()
        wait_for(lambda: len(receiver.requests) >= 60 and first.outbox.pending() == 0, timeout=15,
                 what="every notification delivered")
        time.sleep(0.2)  # a duplicate would have arrived by now
    finally:
        first.stop()
        second.stop()
        for e in engines:
            e.dispose()
    titles = sorted(r["json"]["title"] for r in receiver.requests)
    assert titles == sorted(f"消息 {i}" for i in range(60))


def test_a_slow_channel_does_not_hold_up_the_others(engine, receiver):
    slow_robot = Receiver()
    slow_robot.delay_s = 1.5
    slow, fast = webhook(slow_robot, "slow"), webhook(receiver, "fast")
    try:
        with dispatcher(engine, [slow, fast]) as d:
            d.start()
            d.outbox.enqueue("to-slow", slow, "", "high", {"title": "t", "text": "x"})
            d.wake()
            wait_for(lambda: slow_robot.requests, timeout=2, interval=0.005, what="the slow send to start")
            started = time.monotonic()
            d.outbox.enqueue("to-fast", fast, "", "high", {"title": "t", "text": "x"})
            d.wake()
            wait_for(lambda: receiver.requests, timeout=1, interval=0.005, what="the fast channel")
            assert receiver.requests[0]["at"] - started < 0.5
            assert {r.key: r.status for r in rows(engine)}["to-slow"] == "pending"  # still waiting for its answer
            wait_for(lambda: d.outbox.pending() == 0, timeout=5, what="the slow channel")
    finally:
        slow_robot.stop()


def test_enqueue_then_wake_is_dispatched_within_200_ms(engine, receiver):
    channel = webhook(receiver)
    latencies = []
    with dispatcher(engine, [channel]) as d:
        d.start()
        for i in range(40):
            started = time.monotonic()
            d.outbox.enqueue(f"k{i}", channel, "", "high", {"title": str(i), "text": "x"})
            d.wake()
            wait_for(lambda i=i: len(receiver.requests) > i, timeout=5, interval=0.001)
            latencies.append(receiver.requests[i]["at"] - started)
    latencies.sort()
    assert latencies[int(len(latencies) * 0.99) - 1] <= 0.2, latencies


# --- templates ------------------------------------------------------------------------------------------


def test_chinese_message_names_the_place_severity_time_and_device():
    msg = render(ALERT, "new")
    assert msg["title"] == "【高】非开放时段开门 · 青山村党群服务中心"
    assert msg["text"].splitlines()[0] == "### 【高】新告警：非开放时段开门"
    assert "- 场所：城关镇 · 青山村 · 青山村党群服务中心" in msg["text"]
    assert "- 时间：2026-11-26 23:05" in msg["text"]  # Asia/Shanghai
    assert "- 设备：pi-0007 / front" in msg["text"]
    assert "未确认" not in msg["text"]


def test_english_message():
    msg = render({**ALERT, "severity": "critical"}, "escalate_township", "en", "https://vw.example.gov.cn/",
                 now=T0 + timedelta(minutes=10, seconds=59))
    assert msg["title"] == "【Critical】Door opened outside opening hours · 青山村党群服务中心"
    assert "Escalated to the township leader" in msg["text"]
    assert "城关镇 · 青山村 · 青山村党群服务中心" in msg["text"]
    assert "Not acknowledged for 10 min" in msg["text"]
    assert "[Open the duty console](https://vw.example.gov.cn/)" in msg["text"]


@pytest.mark.parametrize(("reason", "words"), [
    ("renotify", "未确认提醒"), ("escalate_township", "升级至乡镇负责人"), ("escalate_county", "升级至县值班中心")])
def test_reminders_and_escalations_say_how_long_it_is_unacknowledged(reason, words):
    text = render(ALERT, reason, now=T0 + timedelta(minutes=25))["text"]
    assert words in text and "已 25 分钟未确认" in text


def test_every_severity_has_a_chinese_label_and_an_unstaffed_shift_renders():
    labels = [render({**ALERT, "severity": s}, "new")["title"][:4] for s in ("critical", "high", "medium", "low")]
    assert labels == ["【紧急】", "【高】非", "【中】非", "【低】非"]
    shift = render({"title": "城关镇值班室 20:00 班次", "severity": "high", "township_name": "城关镇"},
                   "shift_unstaffed")
    assert "值班无人签到：城关镇值班室 20:00 班次" in shift["text"] and "请值班人员尽快签到" in shift["text"]
    with pytest.raises(ValueError, match="unknown notification reason 'later'"):
        render(ALERT, "later")


# --- configuration ---------------------------------------------------------------------------------------


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        NotifySettings.model_validate(data)
    return describe(exc.value, "server.yaml")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_message_holds_a_keyword_a_guarded_dingtalk_robot_can_require(lang):
    alert_word, shift_word = {"zh": ("告警", "值班"), "en": ("alert", "duty")}[lang]
    for reason in ("new", "renotify", "escalate_township", "escalate_county"):
        assert alert_word in render({**ALERT, "title": "门未关"}, reason, lang)["text"]
    assert shift_word in render({"title": "x", "severity": "high"}, "shift_unstaffed", lang)["text"]


def test_config_errors_name_the_field_and_the_fix():
    assert problems({"channels": [{"name": "ding", "type": "dingtalk"}]}) == (
        "server.yaml: channels[0]: url: a dingtalk channel needs its full http(s) URL "
        "(write e.g. https://oapi.dingtalk.com/robot/send?access_token=…)")
    assert "channels[0]: smtp: an email channel needs an smtp: block" in problems(
        {"channels": [{"name": "mail", "type": "email"}]})
    assert "channels[0].smtp.sender: is required (add it)" in problems(
        {"channels": [{"name": "mail", "type": "email", "smtp": {"host": "smtp.example.gov.cn"}}]})
    assert "channels[0].name: 'County Duty' is not a channel id (use lowercase letters" in problems(
        {"channels": [{"name": "County Duty", "type": "webhook", "url": "https://h/x"}]})
    assert "channels[1].name: 'a' is used twice" in problems(
        {"channels": [{"name": "a", "type": "webhook", "url": "https://h/x"},
                      {"name": "a", "type": "webhook", "url": "https://h/y"}]})
    assert "channels[0]: secret_file: only dingtalk channels sign requests" in problems(
        {"channels": [{"name": "w", "type": "wecom", "url": "https://h/x?key=1", "secret_file": "s"}]})
    assert "lease_s: 15 must be at least twice the timeout_s of channel 'slow' (10)" in problems(
        {"lease_s": 15, "channels": [{"name": "slow", "type": "webhook", "url": "https://h/x"}]})
    assert "channels[0].type: Input should be" in problems({"channels": [{"name": "x", "type": "sms"}]})
    assert "channels[0].urls: is not a known key" in problems(
        {"channels": [{"name": "x", "type": "webhook", "url": "https://h/", "urls": []}]})


def test_relative_secret_files_are_resolved_against_the_config_folder(tmp_path):
    settings = NotifySettings.model_validate({"channels": [
        {"name": "ding", "type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
         "secret_file": "secrets/ding"},
        {"name": "mail", "type": "email", "smtp": {"host": "smtp.example.gov.cn", "sender": "vw@example.gov.cn",
                                                   "username": "vw", "password_file": "secrets/smtp"}}]})
    resolved = settings.relative_to(tmp_path)
    assert resolved.channels[0].secret_file == tmp_path / "secrets/ding"
    assert resolved.channels[1].smtp.password_file == tmp_path / "secrets/smtp"
    assert resolved.channels[1].smtp.effective_port == 587


def test_every_rule_has_an_english_name():
    from server.rules import RULES

    for rule in RULES:
        title = render({**ALERT, "rule": rule, "title": RULES[rule][1]}, "new", "en")["title"]
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in title.split(" · ")[0]), (rule, title)
