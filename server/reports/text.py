"""Words of the reports and the review, Chinese first (docs/reports.md, ../GLOSSARY terms)."""

from __future__ import annotations

from typing import Any

from server.alerts import AUTO_OUTCOME, OUTCOMES
from server.notify.templates import rule_name, severity_name

LANGS = ("zh", "en")

_OUTCOMES_EN = {
    "real_intrusion": "Real intrusion", "forgot_arm": "Staff forgot to arm/disarm",
    "false_alarm_sensor": "False alarm: sensor", "false_alarm_camera": "False alarm: camera",
    "test": "Test", "other": "Other", AUTO_OUTCOME: "Cleared by itself", "unresolved": "Not resolved",
}
_OUTCOMES_ZH = {**OUTCOMES, AUTO_OUTCOME: "自动恢复", "unresolved": "未处置"}

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "nightly": "夜间报告", "county": "全县", "revision": "第 {n} 版", "built": "生成于",
        "reason_nightly": "夜间自动生成", "reason_late_data": "迟到数据到达后重建", "reason_manual": "手动重建",
        "summary": "概况", "venues": "活动场所", "devices": "设备", "availability": "设备可用率",
        "offline_minutes": "离线分钟（设备·分钟）", "alerts": "告警", "unacknowledged": "未确认告警",
        "escalated": "已升级告警", "false_alarm_ratio": "误报率", "after_hours_doors": "非开放时段开门",
        "tamper_events": "摄像头遮挡/破坏事件", "compliance": "开放率", "door_openings": "开门次数",
        "late_events": "迟到事件", "alerts_by_rule": "告警（按规则和级别）", "rule": "规则", "severity": "级别",
        "count": "数量", "acked": "已确认", "outcomes": "处置结果", "response": "响应时间",
        "ack_time": "确认用时", "resolve_time": "处置用时", "median": "中位数", "p90": "90% 分位", "worst": "最长",
        "venue_table": "各场所情况", "venue": "场所", "township": "乡镇", "village": "村",
        "posted_minutes": "公示开放（分钟）", "open_minutes": "实际开放（分钟）", "active_minutes": "有人活动（分钟）",
        "false_alarms": "误报", "after_hours": "非开放时段开门", "tamper": "遮挡/破坏事件", "time": "时间",
        "sensor": "传感器", "state": "状态", "snapshots": "抓拍", "late": "迟到", "duty": "值班情况",
        "room": "值班室", "shifts": "班次", "covered": "已签到班次", "checkins": "签到", "handovers": "交班记录",
        "completeness": "数据完整性", "received_after_day": "次日才到达的事件", "open_gaps": "仍未补齐的数据缺失",
        "data_alerts": "数据缺失/丢失告警", "alert_list": "告警明细", "opened_at": "发生时间", "outcome": "处置结果",
        "chart_hourly": "每小时告警数", "chart_availability": "设备可用率", "chart_compliance": "开放率（实际/公示）",
        "none": "无", "yes": "是", "no": "否", "minutes": "分钟", "not_applicable": "—",
        "review": "县级督查", "ranking": "乡镇排名", "trend": "趋势", "worst_venues": "问题最多的场所",
        "recurring": "反复出现的问题", "coverage": "监控覆盖", "no_camera": "无摄像头的场所",
        "no_door": "无门磁的场所", "never_seen": "从未上线的设备", "days": "天数", "days_with": "出现天数",
        "monthly": "月度督查报告", "score": "综合得分", "mean_ack": "平均响应时间", "missing_days": "缺少报告的日期",
        "page_of": "第 {page} 页", "more": "另有 {n} 条未列出（CSV 列出前 2000 条，合计见概况）。",
    },
    "en": {
        "nightly": "Nightly report", "county": "County", "revision": "revision {n}", "built": "built",
        "reason_nightly": "nightly", "reason_late_data": "rebuilt after late data", "reason_manual": "rebuilt by hand",
        "summary": "Summary", "venues": "Venues", "devices": "Devices", "availability": "Device availability",
        "offline_minutes": "Offline (device-minutes)", "alerts": "Alerts", "unacknowledged": "Unacknowledged alerts",
        "escalated": "Escalated alerts", "false_alarm_ratio": "False-alarm ratio",
        "after_hours_doors": "Doors opened outside opening hours", "tamper_events": "Camera tamper events",
        "compliance": "Opening compliance", "door_openings": "Door openings", "late_events": "Late events",
        "alerts_by_rule": "Alerts by rule and severity", "rule": "Rule", "severity": "Severity", "count": "Count",
        "acked": "Acknowledged", "outcomes": "Outcomes", "response": "Response times",
        "ack_time": "Time to acknowledge",
        "resolve_time": "Time to resolve", "median": "median", "p90": "p90", "worst": "worst",
        "venue_table": "Venues", "venue": "Venue", "township": "Township", "village": "Village",
        "posted_minutes": "Posted open (min)", "open_minutes": "Actually open (min)",
        "active_minutes": "Activity (min)",
        "false_alarms": "False alarms", "after_hours": "Doors opened outside opening hours",
        "tamper": "Camera tamper events", "time": "Time", "sensor": "Sensor", "state": "State",
        "snapshots": "Snapshots", "late": "late", "duty": "Duty", "room": "Duty room", "shifts": "Shifts",
        "covered": "Shifts checked in", "checkins": "Check-ins", "handovers": "Handover notes",
        "completeness": "Data completeness", "received_after_day": "Events received after the day",
        "open_gaps": "Data gaps still open", "data_alerts": "Data gap/lost alerts", "alert_list": "Alerts",
        "opened_at": "Opened", "outcome": "Outcome", "chart_hourly": "Alerts per hour",
        "chart_availability": "Device availability", "chart_compliance": "Opening compliance (actual/posted)",
        "none": "none", "yes": "yes", "no": "no", "minutes": "min", "not_applicable": "—",
        "review": "County review", "ranking": "Township ranking", "trend": "Trends", "worst_venues": "Worst venues",
        "recurring": "Recurring problems", "coverage": "Coverage", "no_camera": "Venues without a camera",
        "no_door": "Venues without a door sensor", "never_seen": "Devices never seen", "days": "Days",
        "days_with": "days seen", "monthly": "Monthly review", "score": "Score", "mean_ack": "Mean time to acknowledge",
        "missing_days": "Days without a report", "page_of": "page {page}",
        "more": "{n} more not listed (the CSV lists the first 2000; the summary has the totals).",
    },
}


def words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["zh"])


def outcome_name(outcome: str | None, lang: str) -> str:
    names = _OUTCOMES_EN if lang == "en" else _OUTCOMES_ZH
    return names.get(outcome or "unresolved", outcome or "")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def seconds(value: float | None, lang: str = "zh") -> str:
    """A duration for people: 45 秒, 3.5 分钟, 2.1 小时."""
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.0f} 秒" if lang == "zh" else f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.1f} 分钟" if lang == "zh" else f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} 小时" if lang == "zh" else f"{value / 3600:.1f} h"


def filters(lang: str) -> dict[str, Any]:
    """Jinja filters bound to a language."""
    return {"rule": lambda r: rule_name(r, lang), "severity": lambda s: severity_name(s, lang),
            "outcome": lambda o: outcome_name(o, lang), "pct": percent, "dur": lambda v: seconds(v, lang)}
