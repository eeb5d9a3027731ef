"""Message text for an alert, in Chinese (default) or English: short markdown that fits a phone screen.

Plain Python rather than Jinja2: five reasons times a few optional lines read better as code than as template
conditionals. The words come from the catalog (server/i18n.py), in the channel's language (`lang`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.i18n import N_, Text
from server.vocab import alert_title, severity_name

SHANGHAI = ZoneInfo("Asia/Shanghai")
REASONS = ("new", "renotify", "escalate_township", "escalate_county", "shift_unstaffed")

_REASON = {"new": N_("新告警"), "renotify": N_("未确认提醒"), "escalate_township": N_("升级至乡镇负责人"),
           "escalate_county": N_("升级至县值班中心"), "shift_unstaffed": N_("值班无人签到")}
_UNACKED_REASONS = ("renotify", "escalate_township", "escalate_county")


def render(alert: dict[str, Any], reason: str, lang: str = "zh", console_url: str | None = None, *,
           now: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> dict[str, str]:
    """{"title", "text"} for one alert. `now` (default: the current time) gives the minutes unacknowledged."""
    if reason not in REASONS:
        raise ValueError(f"unknown notification reason {reason!r} (use one of: {', '.join(REASONS)})")
    t = Text(lang, tz)
    severity = severity_name(alert.get("severity") or "?", t)
    what = alert_title(alert, t)
    lines = [t.gettext("### 【%(severity)s】%(reason)s：%(what)s", severity=severity,
                       reason=t.gettext(_REASON[reason]), what=what), ""]
    place = " · ".join(str(p) for p in (alert.get("township_name"), alert.get("village_name"),
                                         alert.get("venue_name")) if p)
    if place:
        lines.append(t.gettext("- 场所：%(place)s", place=place))
    opened = _parse(alert.get("opened_at"))
    if opened:
        lines.append(t.gettext("- 时间：%(time)s", time=t.datetime(opened)))
    device = " / ".join(str(p) for p in (alert.get("device"), alert.get("sensor")) if p)
    if device:
        lines.append(t.gettext("- 设备：%(device)s", device=device))
    if reason in _UNACKED_REASONS and opened:
        minutes = max(0, int(((now or datetime.now(UTC)) - opened).total_seconds() // 60))
        lines.append(t.gettext("- **已 %(minutes)s 分钟未确认**", minutes=t.number(minutes)))
    # Every alert message says 告警 / alert and every shift message 值班 / duty: DingTalk robots guarded by
    # keywords (安全设置) need one of their keywords in each message.
    ask = t.gettext("请值班人员尽快签到。") if reason == "shift_unstaffed" else t.gettext("请尽快确认并处置该告警。")
    lines += ["", ask]
    if console_url:
        lines.append(t.gettext("[打开值班台](%(url)s)", url=console_url))
    title = t.gettext("【%(severity)s】%(what)s", severity=severity, what=what)
    if alert.get("venue_name"):
        title += f" · {alert['venue_name']}"
    return {"title": title, "text": "\n".join(lines)}


def message(alert: dict[str, Any], reason: str, lang: str = "zh", console_url: str | None = None, *,
            now: datetime | None = None, tz: ZoneInfo = SHANGHAI) -> dict[str, Any]:
    """What the outbox stores: the rendered text plus the alert and reason (the webhook forwards them)."""
    return {**render(alert, reason, lang, console_url, now=now, tz=tz), "lang": lang, "reason": reason,
            "alert": alert}


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
