"""What the server's ids are called, for people: rules, severities, outcomes, tamper states, steps, roles.

Marked for the catalog (server/i18n.py) and translated where they are shown: the console, the notifications,
the reports. The rule titles, tamper states, escalation steps and roles are defined (and marked) in their own
modules; the outcome names here repeat server/alerts.py's OUTCOMES word for word (tests/server/test_i18n.py
checks), because that module hands them to the API in Chinese.
"""

from __future__ import annotations

from typing import Any

from server.i18n import N_, Text
from server.rules import RULES, TAMPER_STATES

SEVERITY_NAMES = {"critical": N_("紧急"), "high": N_("高"), "medium": N_("中"), "low": N_("低")}
OUTCOME_NAMES = {
    "real_intrusion": N_("真实入侵"),
    "forgot_arm": N_("工作人员忘记布防/撤防"),
    "false_alarm_sensor": N_("误报：传感器"),
    "false_alarm_camera": N_("误报：摄像头"),
    "test": N_("测试"),
    "other": N_("其他"),
}
AUTO_OUTCOME = "condition_cleared"  # server/alerts.py's: set by the system when the condition is over
# Outcomes staff never choose: set by the system, or a report's "not yet".
REPORT_OUTCOME_NAMES = {**OUTCOME_NAMES, AUTO_OUTCOME: N_("自动恢复"), "unresolved": N_("未处置")}
# server/alerts.py titles a tamper alert by its state ("摄像头" + the state): the same words, whole.
TAMPER_TITLES = {"covered": N_("摄像头遮挡"), "defocused": N_("摄像头失焦"), "moved": N_("摄像头移位"),
                 "frozen": N_("摄像头画面冻结")}


def rule_name(rule: str, text: Text) -> str:
    """A rule's title, e.g. 非开放时段开门 / Door opened outside opening hours; an unknown rule keeps its id."""
    return text.gettext(RULES[rule][1]) if rule in RULES else rule


def alert_title(alert: dict[str, Any], text: Text) -> str:
    """An alert's title as server/alerts.py writes it (a tamper alert names its state), in `text`'s language."""
    rule = alert.get("rule")
    state = (alert.get("detail") or {}).get("state")
    if rule == "camera_tamper" and state in TAMPER_TITLES:
        return text.gettext(TAMPER_TITLES[state])
    if rule in RULES:
        return rule_name(rule, text)
    return str(alert.get("title") or rule or "")


def tamper_name(state: str, text: Text) -> str:
    return text.gettext(TAMPER_STATES[state]) if state in TAMPER_STATES else state


def severity_name(severity: str, text: Text) -> str:
    return text.gettext(SEVERITY_NAMES[severity]) if severity in SEVERITY_NAMES else severity


def outcome_name(outcome: str | None, text: Text) -> str:
    outcome = outcome or "unresolved"
    return text.gettext(REPORT_OUTCOME_NAMES[outcome]) if outcome in REPORT_OUTCOME_NAMES else outcome
