"""Every string the console's scripts (static/*.js) show, by key, in the catalog's Chinese source text.

base.html embeds the translated strings of a page's scripts as JSON; the scripts read them with VW.t(key,
{name: value}), which fills `{name}` placeholders. So the scripts hold no words of their own and need no build
step (tests/server/test_i18n.py fails on Chinese left in a script). English with a count is phrased so that it
needs no plural form ("Backlog: {n}"), as the scripts know no plural rules.
"""

from __future__ import annotations

from server.i18n import N_, NP_
from server.rules import RULES, TAMPER_STATES
from server.vocab import SEVERITY_NAMES, TAMPER_TITLES

Message = str | tuple[str, str]  # a msgid, or (context, msgid)

_COMMON: dict[str, Message] = {
    "loading": N_("加载中…"), "none": N_("无"), "list_sep": N_("、"), "item_sep": N_("；"),
    "paren": N_("{a}（{b}）"), "op_failed": N_("操作失败：{error}"), "minutes": N_("{n} 分钟"),
    "hours": N_("{n} 小时"),
}

_CONSOLE: dict[str, Message] = {
    **{f"severity.{key}": name for key, name in SEVERITY_NAMES.items()},
    **{f"rule.{rule}": title for rule, (_severity, title) in RULES.items()},
    **{f"tamper_title.{state}": title for state, title in TAMPER_TITLES.items()},
    "status.open": N_("未确认"), "status.acked": N_("已确认"), "status.resolved": N_("已处置"),
    "status_by": N_("{status}（{user}）"),
    "fired.renotify": N_("已再次提醒"), "fired.township": N_("已升级至乡镇"), "fired.county": N_("已升级至县"),
    # The step an unacknowledged incident takes next (server/escalation.py), shown as "{what} in 7:59".
    "next.renotify": N_("升级：再次提醒值班人员"), "next.township": NP_("next step", "升级至乡镇负责人"),
    "next.county": NP_("next step", "升级至县值班中心"), "next.other": N_("升级：{title}"),
    "countdown": N_("{time} 后{what}"), "escalated": N_("已升级（{steps}）"),
    "escalated_then": N_("已升级（{steps}）· {countdown}"),
    "sound.title": N_("紧急告警到达时响铃"), "sound.title_on": N_("紧急告警到达时响铃（再次点击关闭）"),
    "self_resolving": N_("值班人员签到后自动恢复"), "note.placeholder": N_("备注（可不填）"), "note.label": N_("备注"),
    "ack": N_("确认"), "ack_incident": N_("全部确认"), "ack_incident.title": N_("确认同一事件的全部告警"),
    "outcome.label": N_("处置结果"), "resolve": N_("处置"), "outcome.auto": N_("已自动恢复"),
    "late": N_("迟报：发生于 {time}，{minutes} 分钟后才收到"),
    "time_estimated": N_("设备时钟未同步，时间为估算"), "time_approximate": N_("设备时钟未同步，时间为近似值"),
    "drops": N_("掉线 {n} 次"), "drops_flapping": N_("掉线 {n} 次，网络不稳定"), "silent": N_("心跳中断"),
    "device_skew": N_("设备时钟偏差 {s} 秒"), "missing": N_("缺失 {n} 条"), "motion_count": N_("移动侦测 {n} 次"),
    "unstaffed": N_("{room} {shift}无人签到"), "incident_size": N_("同一事件 {n} 条"),
    "details.show": N_("详情"), "details.hide": N_("收起详情"), "no_alerts": N_("当前没有待处理告警"),
    "showing": N_("显示最新 {shown} 条，共 {total} 条"), "page_title": NP_("page", "告警"),
    "kind.door": N_("门磁"), "kind.motion": N_("移动侦测"), "kind.tamper": N_("摄像头"), "kind.camera": N_("摄像头"),
    "kind.button": N_("按钮"), "kind.system": N_("系统"),
    **{f"state.{state}": word for state, word in TAMPER_STATES.items()},
    "state.open": N_("开门"), "state.closed": N_("关门"), "state.start": N_("开始"), "state.end": N_("结束"),
    "state.clear": N_("恢复正常"), "state.online": N_("在线"), "state.offline": N_("离线"),
    "recent_events": N_("场所最近事件"), "snapshots": N_("抓拍"), "no_venue_events": N_("无场所事件"),
    "no_events": N_("暂无事件"), "events_failed": N_("事件加载失败：{error}"),
    "event_line": N_("{time}　{kind} {sensor}：{state}"), "no_snapshot": N_("无抓拍"), "view_original": N_("查看原图"),
    "snapshot_alt": N_("抓拍 {time}"), "snapshots_failed": N_("抓拍加载失败：{error}"),
}

_DUTY: dict[str, Message] = {
    "duty.next_day": N_("次日 {time}"), "duty.me": N_("{name}（我）"), "duty.checked_in": N_("✓ {name} 已签到"),
    "duty.not_checked_in": N_("{name} 未签到"), "duty.current_shift": N_("当前班次：{name} {hours}"),
    "duty.checkin": N_("签到"), "duty.next_shift": N_("下一班：{shifts}"),
    "duty.shift_staff": N_("{name} {hours}（{staff}）"), "duty.no_handover": N_("暂无交班记录"),
    "duty.note_meta": N_("{name} · {time}"), "duty.note_meta_previous": N_("{name} · {time} · 上一班"),
    "duty.handover_label": N_("交班记录内容"),
    "duty.handover_placeholder": N_("本班情况、未处置的告警、钥匙和设备交接…"),
    "duty.handover_submit": N_("提交交班记录"), "duty.handover_open": N_("写交班记录"),
    "duty.no_shift": N_("当前无排班"), "duty.checked_count": N_("{shifts} · 已签到 {n}/{total}"),
    "duty.leader": N_("负责人：{name}"), "duty.handover": N_("交班记录"),
    "duty.checkin_failed": N_("签到失败：{error}"),
    "duty.handover_empty": N_("请先填写交班记录"), "duty.submit_failed": N_("提交失败：{error}"),
    "duty.holiday_missing": N_("节假日数据缺失：{years} 年（请管理员补充）"),
}

# A venue's state, shared by the board and the venue page (static/venuestate.js), and the words both show.
_VENUESTATE: dict[str, Message] = {
    "state.alert": NP_("venue state", "告警"), "state.alert_n": N_("告警 {n}"), "state.offline": N_("离线"),
    "state.armed": NP_("venue state", "布防"), "state.disarmed": NP_("venue state", "撤防"),
    "state.open": N_("开放中"), "state.ok": N_("正常"),
    "door.open": N_("开门"), "door.closed": N_("关门"),
    "device.online": N_("在线"), "device.offline": N_("离线"), "device.unknown": N_("未上线"),
    "day.workday": N_("工作日"), "day.weekend": N_("周末"), "day.holiday": N_("节假日"),
    "day.adjusted_workday": N_("调休工作日"),
    "sensor_state": N_("{sensor}：{state}"), "status_since": N_("{status}自 {time}"),
    "last_seen": N_("最后心跳 {time}"), "backlog": N_("待补传 {n} 条"), "signal": N_("信号 {pct}"),
    "clock_skew": N_("时钟偏差 {s} 秒"), "gap_since": N_("数据缺失自 {time}"),
    "today": N_("今日（{kind}）：{periods}"), "closed_today": N_("不开放"),
}

# The status board (static/venues.js).
_VENUES: dict[str, Message] = {
    "duration.30": N_("30 分钟"), "duration.60": N_("1 小时"), "duration.120": N_("2 小时"),
    "duration.240": N_("4 小时"), "duration.480": N_("8 小时"),
    "open_now": N_("开放时段"), "closed_now": N_("非开放时段"),
    "override_armed": N_("人工布防至 {until}，操作人 {by}"), "override_disarmed": N_("人工撤防至 {until}，操作人 {by}"),
    "schedule": N_("按日程"), "schedule_disarm_at": N_("按日程，{time} 自动撤防"),
    "schedule_arm_at": N_("按日程，{time} 自动布防"),
    "arm_minutes": N_("布防/撤防时长"), "arm_note.placeholder": N_("原因（可不填）"), "arm_note.label": N_("原因"),
    "arm": N_("布防"), "disarm": N_("撤防"), "schedule_restore": N_("恢复日程"), "armed": N_("已布防"),
    "disarmed": N_("未布防"),
    "venue_count": N_("{n} 个场所"), "tally.alert": N_("告警 {n}"), "tally.offline": N_("离线 {n}"),
    "shown": N_("显示 {n} 个场所，共 {total} 个"), "no_match": N_("没有符合筛选条件的场所"),
    "no_venues": N_("无可见的场所"),
}

# The venue page (static/venue.js).
_VENUE: dict[str, Message] = {
    **{f"severity.{key}": name for key, name in SEVERITY_NAMES.items()},
    **{f"rule.{rule}": title for rule, (_severity, title) in RULES.items()},
    "status.open": N_("未确认"), "status.acked": N_("已确认"), "status.resolved": N_("已处置"),
    "alert_line": N_("{time} · {status}"), "no_alerts": N_("近期没有告警"),
    "no_doors_today": N_("今日没有开关门记录"), "late": N_("（迟报）"), "load_failed": N_("加载失败：{error}"),
    "no_cameras": N_("没有摄像头"), "no_snapshot": N_("无抓拍"), "snapshot_alt": N_("抓拍 {time}"),
    "snapshot_at": N_("最新抓拍 {time}"),
    **{f"camera_state.{state}": word for state, word in TAMPER_STATES.items()},
    "camera_state.online": N_("在线"), "camera_state.offline": N_("离线"), "camera_state.clear": N_("恢复正常"),
    "camera_state.start": N_("移动侦测"), "camera_state.end": N_("无移动"), "camera_state.snapshot": N_("抓拍"),
    "seconds": N_("{n} 秒"),
    "chart_label": N_("{metric}，{range}"), "range.day": N_("最近 24 小时"), "range.week": N_("最近 7 天"),
    "metric_sensor": N_("{metric}（{sensor}）"), "metric.door_opened": N_("开门次数"),
    "metric.door_open": N_("门开着"), "metric.motion_started": N_("移动侦测次数"),
    "metric.motion_active": N_("移动侦测中"), "metric.tamper_active": N_("摄像头异常"),
    "metric.tamper_covered": N_("遮挡次数"), "metric.camera_online": N_("摄像头在线"),
    "metric.journal_backlog": N_("待补传条数"), "metric.link.signal_pct": N_("信号强度（%）"),
    "metric.cpu_temp_c": N_("CPU 温度（℃）"),
    "no_series": N_("该设备暂无曲线数据"), "no_points": N_("这段时间没有数据"),
}

_REPORTS: dict[str, Message] = {
    "reason.nightly": N_("夜间生成"), "reason.late_data": N_("迟到数据重建"), "reason.manual": N_("手动重建"),
    "col.scope": N_("范围"), "col.revision": N_("版本"), "col.built": N_("生成时间"), "col.files": N_("文件"),
    "day_label": N_("{day}（{weekday}）"), "open_tab": N_("在新标签页中查看"),
    "open_tab_revision": N_("在新标签页中查看（第 {n} 版）"), "view": N_("查看"),
    "revision_label": N_("{scope} {day} 的版本"), "revision": N_("第 {n} 版"),
    "revision_latest": N_("第 {n} 版（最新）"),
    "older": N_("历史版本"), "revision_reason": N_("第 {n} 版 · {reason}"), "no_reports": N_("暂无报告"),
    "no_reports_filtered": N_("暂无报告（没有符合筛选条件的报告）"), "all": N_("全部"),
    "list_failed": N_("报告列表加载失败：{error}"),
}

_REVIEW: dict[str, Message] = {
    "col.rank": N_("排名"), "col.township": N_("乡镇"), "col.score": N_("综合得分"),
    "col.availability": N_("设备可用率"),
    "col.mean_ack": N_("平均响应时间"), "col.false_alarms": N_("误报率"), "col.compliance": N_("开放率"),
    "col.alerts": N_("告警"), "col.after_hours": N_("非开放时段开门"), "col.venues": N_("场所数"),
    "kpi.unacknowledged": N_("未确认告警"), "kpi.tamper": N_("摄像头遮挡/移位"), "kpi.offline": N_("设备离线时长"),
    "kpi.door_openings": N_("开门次数"), "no_townships": N_("无可见的乡镇"),
    "chart_label": N_("{from} 至 {to} 每日设备可用率与开放率"), "no_data": N_("本周期没有数据"),
    "days": N_("{n} 天"), "monthly_pdf": N_("月度督查 PDF（{month}）"), "missing_days": N_("有 {n} 天没有报告数据"),
    "missing_days_list": N_("有 {n} 天没有报告数据：{days}"), "period": N_("{from} 至 {to}"),
    "review_failed": N_("督查数据加载失败：{error}"),
}

JS_STRINGS: dict[str, dict[str, Message]] = {
    "common": _COMMON, "console": _CONSOLE, "duty": _DUTY, "venuestate": _VENUESTATE, "venues": _VENUES,
    "venue": _VENUE, "reports": _REPORTS, "review": _REVIEW,
}
# The scripts each page loads (templates/*.html); the login page loads common.js only.
PAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "alerts": ("common", "console", "duty"), "venues": ("common", "venuestate", "venues"),
    "venue": ("common", "venuestate", "venue"), "reports": ("common", "reports"),
    "review": ("common", "review"),
}
