"""Applying the console's admin forms: one checked edit of the inventory file, or one new account.

Each change is made under a lock (threads of this process, and an flock for other processes: a second
web process, or the console racing itself), against the file as it is on disk at that moment, not the
copy in memory; checked with server/admin/checks.py; validated again as a whole by the server's model;
written atomically with the previous version kept as `.bak`; then reloaded into every part of the server
(server/admin/reload.py) and written to the audit log.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from protocol.configfile import ConfigError
from server import audit
from server.admin import checks
from server.admin.checks import Problems
from server.admin.reload import InventoryWatcher, writable
from server.i18n import N_
from server.inventory import InventoryFile as InventoryModel
from server.provision.errors import ProvisionError
from server.provision.files import inventory_lock
from server.provision.inventory_edit import InventoryFile as InventoryEditor
from server.store import users
from server.users import UserError, add_user

FORM_FIELD = "_form"  # problems that belong to no one field


@dataclass
class Outcome:
    """What a form did: problems to show next to the fields, or what was added (and a password shown once)."""

    problems: Problems = field(default_factory=dict)
    added: str | None = None
    password: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class InventoryAdmin:
    def __init__(self, engine: Engine, watcher: InventoryWatcher,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._watcher = watcher
        self._now = now
        self.path = watcher.path

    @property
    def writable(self) -> bool:
        return writable(self.path)

    # --- the inventory ----------------------------------------------------------------------------------

    def add_township(self, form: dict[str, Any], actor: str) -> Outcome:
        def change(editor: InventoryEditor) -> None:
            editor.add_node(None, "townships", {"id": _text(form, "id"), "name": _text(form, "name"),
                                                "villages": []})
        return self._edit(form, checks.check_township, change, actor, "township_add")

    def add_village(self, form: dict[str, Any], actor: str) -> Outcome:
        def change(editor: InventoryEditor) -> None:
            editor.add_node(_text(form, "township"), "villages", {"id": _text(form, "id"),
                                                                  "name": _text(form, "name"), "venues": []})
        return self._edit(form, checks.check_village, change, actor, "village_add")

    def add_venue(self, form: dict[str, Any], actor: str) -> Outcome:
        def change(editor: InventoryEditor) -> None:
            hours, _ = checks.venue_hours(form)
            entry: dict[str, Any] = {"id": _text(form, "id"), "name": _text(form, "name"), "hours": hours}
            holidays = _text(form, "holidays") or "closed"
            if holidays != "closed":  # the default is left out, as in a hand-written file
                entry["holidays"] = holidays
            entry["devices"] = []
            editor.add_node(_text(form, "village"), "venues", entry)
        return self._edit(form, checks.check_venue, change, actor, "venue_add")

    def set_venue_hours(self, form: dict[str, Any], actor: str) -> Outcome:
        def change(editor: InventoryEditor) -> None:
            hours, _ = checks.venue_hours(form)
            editor.set_schedule(_text(form, "id"), hours, _text(form, "holidays") or "closed")
        return self._edit(form, checks.check_venue_hours, change, actor, "venue_hours")

    def add_device(self, form: dict[str, Any], actor: str) -> Outcome:
        def change(editor: InventoryEditor) -> None:
            doors, _ = checks.parse_doors_field(_text(form, "doors"))
            editor.add_device(_text(form, "venue"), _text(form, "id"), doors)
        return self._edit(form, checks.check_device, change, actor, "device_add")

    def _edit(self, form: dict[str, Any], check: Callable[[dict[str, Any], InventoryModel], Problems],
              change: Callable[[InventoryEditor], None], actor: str, action: str) -> Outcome:
        target = _text(form, "id")
        try:
            with inventory_lock(self.path):
                editor = InventoryEditor(self.path)  # as it is on disk now, not as this process last read it
                problems = check(form, editor.model.data)
                if problems:
                    return Outcome(problems)
                change(editor)
                editor.save(editor.checked_text())
        except ConfigError as exc:
            # The file on disk is broken (an editor's typo), or the change makes it invalid.
            return Outcome({FORM_FIELD: (N_("场所清单文件有误，未做任何修改：%(detail)s"), {"detail": str(exc)})})
        except (ProvisionError, OSError) as exc:
            return Outcome({FORM_FIELD: (N_("无法写入场所清单文件 %(path)s：%(detail)s。请让服务器的运行用户可以"
                                            "写该文件及其所在目录（见 docs/operations.md）"),
                                         {"path": str(self.path), "detail": str(exc)})})
        self._watcher.check()  # this process at once; the other roles within their next look
        with self._engine.begin() as conn:
            detail = {k: v for k, v in form.items() if k not in ("csrf", "id") and isinstance(v, str) and v}
            audit.record(conn, at=self._now(), actor=actor, action=action, target=target, detail=detail)
        return Outcome(added=target)

    # --- accounts ---------------------------------------------------------------------------------------

    def add_user(self, form: dict[str, Any], actor: str) -> Outcome:
        with self._engine.connect() as conn:
            existing = set(conn.execute(select(users.c.name)).scalars())
        problems = checks.check_user(form, self._watcher.inventory.data, existing)
        if problems:
            return Outcome(problems)
        password = form.get("password") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        role = _text(form, "role")
        scope = _text(form, "scope") if role in checks.SCOPED_ROLES else None
        try:
            add_user(self._engine, self._watcher.inventory, _text(form, "name"), role, scope, password, actor=actor)
        except UserError as exc:  # a race with another admin adding the same name
            return Outcome({FORM_FIELD: (N_("未能创建账号：%(detail)s"), {"detail": str(exc)})})
        return Outcome(added=_text(form, "name"), password=password if generated else None)
