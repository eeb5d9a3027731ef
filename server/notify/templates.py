"""Message text for an alert, in Chinese (default) or English: short markdown that fits a phone screen.

Plain Python rather than Jinja2: five reasons times two languages is a table, and every line is optional,
which reads better as code than as template conditionals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.rules import RULES

SHANGHAI = ZoneInfo("Asia/Shanghai")
REASONS = ("new", "renotify", "escalate_township", "escalate_county", "shift_unstaffed")

_SEVERITY = {
    "zh": {"critical": "紧急", "high": "高", "medium": "中", "low": "低"},
    "en": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
}
_REASON = {
    "zh": {"new": "新告警", "renotify": "未确认提醒", "escalate_township": "升级至乡镇负责人",
           "escalate_county": "升级至县值班中心", "shift_unstaffed": "值班无人签到"},
    "en": {"new": "New alert", "renotify": "Reminder: not acknowledged",
           "escalate_township": "Escalated to the township leader",
           "escalate_county": "Escalated to the county duty centre", "shift_unstaffed": "Shift unstaffed"},
}
# English names of the rules in server/rules.py; a rule not listed here keeps its Chinese title.
_RULE_EN = {
    "door_after_hours": "Door opened outside opening hours",
    "door_held_open": "Door held open (outside opening hours)",
    "device_offline": "Device offline",
    "data_gap": "Data gap",
    "data_lost": "Data lost (device buffer overflow)",
    "clock_skew": "Clock skew",
    "motion_armed": "Motion while armed",
    "camera_tamper": "Camera tampered",
    "camera_offline": "Video lost",
    "sensor_fault": "Sensor fault",
    "venue_not_opened": "Venue not opened on time",
    "shift_unstaffed": "Shift unstaffed (nobody checked in)",
}
_LABELS = {
    "zh": {"venue": "场所", "opened": "时间", "device": "设备", "unacked": "已 {m} 分钟未确认",
           "link": "打开值班台", "ack": "请尽快确认并处置该告警。", "check_in": "请值班人员尽快签到。"},
    "en": {"venue": "Venue", "opened": "Opened", "device": "Device", "unacked": "Not acknowledged for {m} min",
           "link": "Open the duty console", "ack": "Please acknowledge and resolve this alert.",
           "check_in": "The duty officer should check in now."},
}
_UNACKED_REASONS = ("renotify", "escalate_township", "escalate_county")


def render(alert: dict[str, Any], reason: str, lang: str = "zh", console_url: str | None = None, *,
           now: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> dict[str, str]:
    """{"title", "text"} for one alert. `now` (default: the current time) gives the minutes unacknowledged."""
    if reason not in REASONS:
        raise ValueError(f"unknown notification reason {reason!r} (use one of: {', '.join(REASONS)})")
    lang = lang if lang in _LABELS else "zh"
    labels = _LABELS[lang]
    severity = _SEVERITY[lang].get(alert.get("severity") or "", alert.get("severity") or "?")
    what = _title(alert, lang)
    sep, head_sep = ("：", "：") if lang == "zh" else (": ", " — ")
    place = " · ".join(str(p) for p in (alert.get("township_name"), alert.get("village_name"),
                                         alert.get("venue_name")) if p)
    lines = [f"### 【{severity}】{_REASON[lang][reason]}{head_sep}{what}", ""]
    if place:
        lines.append(f"- {labels['venue']}{sep}{place}")
    opened = _parse(alert.get("opened_at"))
    if opened:
        lines.append(f"- {labels['opened']}{sep}{opened.astimezone(tz):%Y-%m-%d %H:%M}")
    device = " / ".join(str(p) for p in (alert.get("device"), alert.get("sensor")) if p)
    if device:
        lines.append(f"- {labels['device']}{sep}{device}")
    if reason in _UNACKED_REASONS and opened:
        minutes = max(0, int(((now or datetime.now(UTC)) - opened).total_seconds() // 60))
        lines.append(f"- **{labels['unacked'].format(m=minutes)}**")
    # Every alert message says 告警 / alert and every shift message 值班 / duty: DingTalk robots guarded by
    # keywords (安全设置) need one of their keywords in each message.
    lines += ["", labels["check_in" if reason == "shift_unstaffed" else "ack"]]
    if console_url:
        lines.append(f"[{labels['link']}]({console_url})")
    title = f"【{severity}】{what}" + (f" · {alert['venue_name']}" if alert.get("venue_name") else "")
    return {"title": title, "text": "\n".join(lines)}


def message(alert: dict[str, Any], reason: str, lang: str = "zh", console_url: str | None = None, *,
            now: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> dict[str, Any]:
    """What the outbox stores: the rendered text plus the alert and reason (the webhook forwards them)."""
    return {**render(alert, reason, lang, console_url, now=now, tz=tz), "lang": lang, "reason": reason,
            "alert": alert}


def _title(alert: dict[str, Any], lang: str) -> str:
    if lang == "en" and alert.get("rule") in _RULE_EN:
        return _RULE_EN[alert["rule"]]
    return str(alert.get("title") or alert.get("rule") or "")


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rule_name(rule: str, lang: str = "zh") -> str:
    """A rule's name for people: its Chinese title, or the English one."""
    if lang == "en" and rule in _RULE_EN:
        return _RULE_EN[rule]
    return RULES[rule][1] if rule in RULES else rule


def severity_name(severity: str, lang: str = "zh") -> str:
    return _SEVERITY.get(lang, _SEVERITY["zh"]).get(severity, severity)
