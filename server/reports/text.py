"""Words of the reports and the review: Chinese source text from the catalog (server/i18n.py, GLOSSARY terms).

The templates read them as `w.<key>`; `words(lang)` translates the table into the report's language.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from server.i18n import LANGS, N_, NP_, Text
from server.vocab import outcome_name as _outcome_name
from server.vocab import rule_name, severity_name

__all__ = ["LANGS", "filters", "monthly_title", "outcome_name", "percent", "seconds", "words"]

_WORDS: dict[str, str | tuple[str, str]] = {  # a msgid, or (context, msgid)
    "nightly": N_("夜间报告"), "revision": N_("第 {n} 版"), "built": N_("生成于"),
    "reason_nightly": N_("夜间自动生成"), "reason_late_data": N_("迟到数据到达后重建"), "reason_manual": N_("手动重建"),
    "summary": N_("概况"), "venues": N_("活动场所"), "devices": N_("设备"), "availability": N_("设备可用率"),
    "offline_minutes": N_("离线分钟（设备·分钟）"), "alerts": N_("告警"), "unacknowledged": N_("未确认告警"),
    "escalated": N_("已升级告警"), "false_alarm_ratio": N_("误报率"), "after_hours_doors": N_("非开放时段开门"),
    "tamper_events": N_("摄像头遮挡/破坏事件"), "compliance": N_("开放率"), "door_openings": N_("开门次数"),
    "late_events": N_("迟到事件"), "alerts_by_rule": N_("告警（按规则和级别）"), "rule": N_("规则"),
    "severity": N_("级别"), "count": N_("数量"), "acked": N_("已确认"), "outcomes": N_("处置结果"),
    "response": N_("响应时间"), "ack_time": N_("确认用时"), "resolve_time": N_("处置用时"), "median": N_("中位数"),
    "p90": N_("90% 分位"), "worst": N_("最长"), "venue_table": N_("各场所情况"), "venue": N_("场所"),
    "township": N_("乡镇"), "posted_minutes": N_("公示开放（分钟）"), "open_minutes": N_("实际开放（分钟）"),
    "after_hours": N_("非开放时段开门"), "tamper": N_("遮挡/破坏事件"), "time": N_("时间"), "sensor": N_("传感器"),
    "state": N_("状态"), "snapshots": N_("抓拍"), "late": N_("迟到"), "duty": N_("值班情况"), "room": N_("值班室"),
    "shifts": N_("班次"), "covered": N_("已签到班次"), "checkins": NP_("report", "签到"), "handovers": N_("交班记录"),
    "completeness": N_("数据完整性"), "received_after_day": N_("次日才到达的事件"),
    "open_gaps": N_("仍未补齐的数据缺失"), "data_alerts": N_("数据缺失/丢失告警"), "alert_list": N_("告警明细"),
    "opened_at": N_("发生时间"), "outcome": N_("处置结果"), "chart_hourly": N_("每小时告警数"),
    "chart_availability": N_("设备可用率"), "chart_compliance": N_("开放率（实际/公示）"), "none": N_("无"),
    "yes": N_("是"), "ranking": N_("乡镇排名"), "trend": N_("趋势"), "worst_venues": N_("问题最多的场所"),
    "recurring": N_("反复出现的问题"), "coverage": N_("监控覆盖"), "no_camera": N_("无摄像头的场所"),
    "no_door": N_("无门磁的场所"), "never_seen": N_("从未上线的设备"), "days_with": N_("出现天数"),
    "score": N_("综合得分"), "mean_ack": N_("平均响应时间"), "missing_days": N_("缺少报告的日期"),
    "more": N_("另有 {n} 条未列出（CSV 列出前 2000 条，合计见概况）。"),
    # Punctuation is the language's too: 、 and ； between list items, ： before a list.
    "list_sep": N_("、"), "item_sep": N_("；"), "colon": N_("："),
}


def words(lang: str) -> dict[str, str]:
    t = Text(lang)
    return {key: t.pgettext(*message) if isinstance(message, tuple) else t.gettext(message)
            for key, message in _WORDS.items()}


def monthly_title(county: str, month: str, lang: str) -> str:
    """The monthly review's title: 示范县 2026-10 月度督查报告 / 示范县 2026-10 monthly review."""
    return Text(lang).gettext("%(county)s %(month)s 月度督查报告", county=county, month=month)


def outcome_name(outcome: str | None, lang: str) -> str:
    return _outcome_name(outcome, Text(lang))


def percent(value: float | None, lang: str = "zh") -> str:
    return Text(lang).percent(value)


def seconds(value: float | None, lang: str = "zh") -> str:
    """A duration for people: 45 秒, 3.5 分钟, 2.1 小时."""
    if value is None:
        return "—"
    t = Text(lang)
    if value < 60:
        return t.gettext("%(n)s 秒", n=t.decimal(value, 0))
    if value < 3600:
        return t.gettext("%(n)s 分钟", n=t.decimal(value / 60))
    return t.gettext("%(n)s 小时", n=t.decimal(value / 3600))


def filters(lang: str, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """Jinja filters bound to a language (and the time zone of the report's `when` filter)."""
    t = Text(lang, tz)
    return {"rule": lambda r: rule_name(r, t), "severity": lambda s: severity_name(s, t),
            "outcome": lambda o: _outcome_name(o, t), "pct": t.percent, "dur": lambda v: seconds(v, lang),
            "num": lambda n: "—" if n is None else t.number(n) if isinstance(n, int) else t.decimal(n)}
