"""Plain-word checks of the console's admin forms (townships, villages, venues, devices, users).

Pure: each check takes the submitted form and the inventory as it is now, and returns the problems per
form field as (message id, parameters). The web layer translates them (the message ids are the Chinese
the duty staff read; server/i18n.py). An empty result means the form may be applied. The server's own
inventory model validates the whole file again before anything is written, so a case missed here can
still never produce a file the server would refuse.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from protocol.topics import DEVICE_ID_PATTERN
from server.hours import DAYS, parse_period
from server.i18n import N_, NP_
from server.inventory import InventoryFile
from server.users import MIN_PASSWORD, ROLES, SCOPED_ROLES

Problem = tuple[str, dict[str, Any]]
Problems = dict[str, Problem]

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
USER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_NAME = 60
HOLIDAY_CHOICES = ("closed", "weekend", "normal")
# Separators staff type between periods: spaces, commas and semicolons, in either script.
_PERIOD_SPLIT = re.compile(r"[\s,，;；、]+")
# The device account names the server and its roles use on the broker (deploy/mosquitto/acl).
RESERVED_DEVICE_PREFIX = "venuewatch"

# A parameter named `kind` holds one of these message ids: the web layer translates it with the message.
KIND_NAMES = {"county": NP_("in a sentence", "县"), "township": NP_("in a sentence", "乡镇"),
              "village": NP_("in a sentence", "村"), "venue": NP_("in a sentence", "场所")}


@dataclass(frozen=True)
class Node:
    kind: str
    id: str
    name: str
    parent: str | None


def nodes(data: InventoryFile) -> dict[str, Node]:
    """Every id of the tree (county, townships, villages, venues) with its kind, name and parent."""
    found = {data.county.id: Node("county", data.county.id, data.county.name, None)}
    for township in data.townships:
        found[township.id] = Node("township", township.id, township.name, data.county.id)
        for village in township.villages:
            found[village.id] = Node("village", village.id, village.name, township.id)
            for venue in village.venues:
                found[venue.id] = Node("venue", venue.id, venue.name, village.id)
    return found


def device_venues(data: InventoryFile) -> dict[str, str]:
    return {device.id: venue.id for township in data.townships for village in township.villages
            for venue in village.venues for device in venue.devices}


def _text(form: dict[str, Any], field: str) -> str:
    value = form.get(field)
    return value.strip() if isinstance(value, str) else ""


def _check_node_id(value: str, known: dict[str, Node], problems: Problems) -> None:
    if not value:
        problems["id"] = (N_("请填写编号"), {})
    elif not NODE_ID.match(value):
        lower = value.lower()
        if NODE_ID.match(lower):
            problems["id"] = (N_("编号只能用小写字母：请写成 %(suggestion)s"), {"suggestion": lower})
        else:
            problems["id"] = (N_("编号只能用小写字母、数字、“-”和“_”，以字母或数字开头，最多 63 个字符，"
                                 "例如 t-dongxi"), {})
    elif value in known:
        node = known[value]
        problems["id"] = (N_("编号“%(id)s”已被%(kind)s“%(name)s”使用，请换一个"),
                          {"id": value, "kind": KIND_NAMES[node.kind], "name": node.name})


def _check_name(value: str, siblings: list[Node], problems: Problems) -> None:
    if not value:
        problems["name"] = (N_("请填写名称"), {})
    elif len(value) > MAX_NAME:
        problems["name"] = (N_("名称太长：最多 %(max)s 个字"), {"max": MAX_NAME})
    elif any(node.name == value for node in siblings):
        # Two 村委会活动室 under one village would be told apart by nobody at three in the morning.
        problems["name"] = (N_("同一上级下已有名为“%(name)s”的一项，请用能区分的名称"), {"name": value})


def _check_parent(value: str, kind: str, known: dict[str, Node], field: str, problems: Problems) -> None:
    node = known.get(value)
    if not value:
        problems[field] = (N_("请选择所属%(kind)s"), {"kind": KIND_NAMES[kind]})
    elif node is None or node.kind != kind:
        problems[field] = (N_("所属%(kind)s“%(id)s”不存在（可能刚被他人修改），请刷新页面后重选"),
                           {"kind": KIND_NAMES[kind], "id": value})


def _children(known: dict[str, Node], parent: str) -> list[Node]:
    return [node for node in known.values() if node.parent == parent]


def check_township(form: dict[str, Any], data: InventoryFile) -> Problems:
    known = nodes(data)
    problems: Problems = {}
    _check_node_id(_text(form, "id"), known, problems)
    _check_name(_text(form, "name"), _children(known, data.county.id), problems)
    return problems


def check_village(form: dict[str, Any], data: InventoryFile) -> Problems:
    known = nodes(data)
    problems: Problems = {}
    township = _text(form, "township")
    _check_parent(township, "township", known, "township", problems)
    _check_node_id(_text(form, "id"), known, problems)
    _check_name(_text(form, "name"), _children(known, township), problems)
    return problems


def parse_hours_field(text: str) -> tuple[list[str], Problem | None]:
    """'08:30-12:00 14:00-17:30' -> (['08:30-12:00', '14:00-17:30'], None); blank is closed all day."""
    periods = [p for p in _PERIOD_SPLIT.split(text.strip()) if p]
    # Staff often type the Chinese dash or a tilde between the two times.
    periods = [p.replace("－", "-").replace("—", "-").replace("~", "-").replace("～", "-").replace("：", ":")
               for p in periods]
    parsed = []
    for period in periods:
        try:
            parsed.append((parse_period(period), period))
        except ValueError:
            return [], (N_("“%(text)s”不是时段：请写成 08:30-12:00（开始早于结束，时间在 00:00 到 24:00 之间），"
                           "多个时段用空格分开"), {"text": period})
    parsed.sort()
    for (first, first_text), (second, second_text) in itertools.pairwise(parsed):
        if second[0] < first[1]:
            return [], (N_("时段 %(first)s 和 %(second)s 重叠，请合并成一个"), {"first": first_text,
                                                                             "second": second_text})
    return [text for _, text in parsed], None


def venue_hours(form: dict[str, Any]) -> tuple[dict[str, list[str]], Problems]:
    """The weekly hours from the fields hours_mon … hours_sun."""
    hours: dict[str, list[str]] = {}
    problems: Problems = {}
    for day in DAYS:
        periods, problem = parse_hours_field(_text(form, f"hours_{day}"))
        if problem:
            problems[f"hours_{day}"] = problem
        elif periods:
            hours[day] = periods
    return hours, problems


def check_venue(form: dict[str, Any], data: InventoryFile) -> Problems:
    known = nodes(data)
    problems: Problems = {}
    village = _text(form, "village")
    _check_parent(village, "village", known, "village", problems)
    _check_node_id(_text(form, "id"), known, problems)
    _check_name(_text(form, "name"), _children(known, village), problems)
    problems.update(_check_schedule(form))
    return problems


def check_venue_hours(form: dict[str, Any], data: InventoryFile) -> Problems:
    """New weekly hours and holiday rule for an existing venue (its id in the form's `id`)."""
    node = nodes(data).get(_text(form, "id"))
    if node is None or node.kind != "venue":
        return {"id": (N_("场所“%(id)s”不存在（可能刚被他人修改），请回到清单重新选择"), {"id": _text(form, "id")})}
    return _check_schedule(form)


def _check_schedule(form: dict[str, Any]) -> Problems:
    hours, problems = venue_hours(form)
    if not hours and not problems:
        # A venue with no hours is closed all week: every opening would be an after-hours alert.
        problems["hours_mon"] = (N_("请至少填写一天的开放时间（全周不开放的场所，每次开门都会告警）"), {})
    if (_text(form, "holidays") or "closed") not in HOLIDAY_CHOICES:
        problems["holidays"] = (N_("请从列表中选择节假日安排"), {})
    return problems


def parse_doors_field(text: str) -> tuple[list[str], Problem | None]:
    """'front, back' -> (['front', 'back'], None)."""
    doors = [d for d in _PERIOD_SPLIT.split(text.strip()) if d]
    for door in doors:
        if not NODE_ID.match(door):
            return [], (N_("门磁编号“%(door)s”只能用小写字母、数字、“-”和“_”，例如 front 或 back-door"),
                        {"door": door})
    twice = sorted({d for d in doors if doors.count(d) > 1})
    if twice:
        return [], (N_("门磁编号“%(door)s”写了两次，每扇门一个编号"), {"door": twice[0]})
    return doors, None


def check_device(form: dict[str, Any], data: InventoryFile) -> Problems:
    known = nodes(data)
    placed = device_venues(data)
    problems: Problems = {}
    _check_parent(_text(form, "venue"), "venue", known, "venue", problems)
    device = _text(form, "id")
    if not device:
        problems["id"] = (N_("请填写设备编号"), {})
    elif not DEVICE_ID.match(device):
        problems["id"] = (N_("设备编号只能用小写字母、数字、“-”和“_”，以字母或数字开头，例如 pi-dongxi-01"), {})
    elif device.startswith(RESERVED_DEVICE_PREFIX):
        problems["id"] = (N_("以“venuewatch”开头的编号留给服务器自己的账号，请换一个"), {})
    elif device in placed:
        venue = known[placed[device]]
        problems["id"] = (N_("设备“%(id)s”已登记在场所“%(venue)s”，一台设备只能属于一个场所"),
                          {"id": device, "venue": venue.name})
    _, door_problem = parse_doors_field(_text(form, "doors"))
    if door_problem:
        problems["doors"] = door_problem
    return problems


def check_user(form: dict[str, Any], data: InventoryFile, existing: set[str]) -> Problems:
    """A new console account. A blank password is allowed: one is generated and shown once."""
    known = nodes(data)
    problems: Problems = {}
    name = _text(form, "name")
    if not name:
        problems["name"] = (N_("请填写用户名"), {})
    elif not USER_NAME.match(name):
        problems["name"] = (N_("用户名只能用字母、数字、“.”、“-”和“_”，最多 64 个字符（可用姓名拼音，如 zhang.wei）"),
                            {})
    elif name in existing:
        problems["name"] = (N_("用户名“%(name)s”已经有人用了，请换一个"), {"name": name})
    role = _text(form, "role")
    if role not in ROLES:
        problems["role"] = (N_("请选择角色"), {})
    level = SCOPED_ROLES.get(role)
    scope = _text(form, "scope")
    if level is not None:
        node = known.get(scope)
        if not scope:
            problems["scope"] = (N_("这个角色只管一个%(kind)s：请选择是哪一个"), {"kind": KIND_NAMES[level]})
        elif node is None or node.kind != level:
            problems["scope"] = (N_("“%(id)s”不是一个%(kind)s，请从列表中选择"),
                                 {"id": scope, "kind": KIND_NAMES[level]})
    password = form.get("password") or ""
    if password and len(password) < MIN_PASSWORD:
        problems["password"] = (N_("密码太短：至少 %(min)s 个字符；留空则由系统生成"), {"min": MIN_PASSWORD})
    return problems
