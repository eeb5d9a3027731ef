"""The duty desk (值班): who hears of an alert, escalation, shift check-ins and handovers, arming pushes.

Decisions come from pure modules (server/escalation.py, server/roster.py, server/rules.py); this class
does the reading and writing around them. Its `check()` runs on the timed-rules loop; the alert book
calls `alert_opened` after each new alert is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, insert, select
from sqlalchemy.exc import IntegrityError

from protocol import Command
from server import audit
from server.alerts import AlertBook
from server.arming import ArmingBook
from server.escalation import due_steps
from server.i18n import N_
from server.incidents import Grouping, clock_start
from server.inventory import Inventory
from server.notify import ChannelSettings, Dispatcher, NotifySettings, Outbox, message
from server.roster import (
    Room,
    RosterFile,
    ShiftInstance,
    county_room,
    instances,
    is_quiet,
    previous_shift,
    room_for,
    shifts_at,
    unstaffed,
)
from server.rules import SEVERITY_RANK, ResolveAlert, shift_staffed, shift_unstaffed
from server.store import alerts, arming_sent, escalations, handovers, incidents, shift_checkins

log = logging.getLogger("venuewatch.server.duty")

REASONS = {"new": "new", "renotify": "renotify", "township": "escalate_township", "county": "escalate_county"}
# Alerts whose first notification has its own wording (a shift, not a venue).
FIRST_REASON = {"shift_unstaffed": "shift_unstaffed"}
MAX_HANDOVER = 4000


class DutyError(ValueError):
    """A duty action refused: `message` for API clients, `console` (a catalog message id and its parameters)
    for the duty officer, in the console's language."""

    def __init__(self, message: str, status: int = 400, console: tuple[str, dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.console = console


@dataclass(frozen=True)
class Target:
    channel: ChannelSettings
    recipient: str  # e-mail address; "" for a group robot or webhook


class DutyDesk:
    def __init__(self, engine: Engine, inventory: Inventory, book: AlertBook, roster: RosterFile,
                 notify: NotifySettings, arming: ArmingBook, tz: ZoneInfo, now: Callable[[], datetime],
                 dispatcher: Dispatcher | None = None,
                 publish_command: Callable[[str, Command], None] | None = None) -> None:
        self._engine = engine
        self._inventory = inventory
        self._book = book
        self.roster = roster
        self._notify = notify
        self._channels = {c.name: c for c in notify.channels}
        self._email = next((c for c in notify.channels if c.type == "email"), None)
        self.arming = arming
        self._tz = tz
        self._now = now
        self.now = now  # the server's clock, injected: the web layer reads the time from here too
        self.outbox = Outbox(engine, now)
        self._dispatcher = dispatcher
        self._publish_command = publish_command
        book.listeners.append(self.alert_opened)

    # --- who hears of what ----------------------------------------------------------------------------

    def targets(self, township: str | None, severity: str, step: str, now: datetime) -> list[Target]:
        """Where a notification of `step` (new, renotify, township, county) goes."""
        room = room_for(self.roster, township) if step in ("new", "renotify", "township") else county_room(self.roster)
        if room is None:
            return []
        found: list[Target] = []
        if SEVERITY_RANK.get(severity, 9) <= SEVERITY_RANK[room.min_severity]:
            found += [Target(self._channels[name], "") for name in room.channels if name in self._channels]
        people: list[str] = []
        if step == "township":
            people = [room.leader] if room.leader else []
        else:
            people = self.on_duty(room, now)
            if step == "county" and room.leader:
                people.append(room.leader)
        found += self._emails(people, severity, now)
        return found

    def on_duty(self, room: Room, now: datetime) -> list[str]:
        """Those checked in to the running shifts; if nobody has, everyone scheduled on them."""
        running = shifts_at(room, now, self._tz)
        checked = self._checked_in(room.id, [s.start for s in running])
        present = sorted({user for users in checked.values() for user in users})
        return present or sorted({u for s in running for u in s.staff})

    def _emails(self, users: list[str], severity: str, now: datetime) -> list[Target]:
        if self._email is None:
            return []
        people = {p.user: p for p in self.roster.people}
        out = []
        for user in dict.fromkeys(users):
            person = people.get(user)
            if person and person.email and not is_quiet(person, severity, now, self._tz):
                out.append(Target(self._email, person.email))
        return out

    def _send(self, alert: dict[str, Any], step: str, now: datetime, conn: Any = None) -> int:
        """Enqueue the notifications of one step, in the caller's transaction or in one of our own.

        In our own transaction, with a dispatcher in this process, the rows are stored already claimed and
        handed straight to it: nothing then waits for SQLite's write lock between the alert and the phone.
        """
        if conn is None:
            if not self.targets(alert.get("township"), alert["severity"], step, now):
                return 0  # nobody to tell (no roster): no transaction, no disk sync
            with self._engine.begin() as own:
                ids = self._enqueue(alert, step, now, own, claim=self._dispatcher is not None)
            if ids and self._dispatcher is not None:
                self._dispatcher.hand_over(ids)
            return len(ids)
        ids = self._enqueue(alert, step, now, conn, claim=False)
        return len(ids)

    def _enqueue(self, alert: dict[str, Any], step: str, now: datetime, conn: Any, claim: bool) -> list[int]:
        ids = []
        for target in self.targets(alert.get("township"), alert["severity"], step, now):
            reason = FIRST_REASON.get(alert["rule"], "new") if step == "new" else REASONS[step]
            body = message(alert, reason, target.channel.lang, self._notify.console_url, now=now)
            key = f"alert:{alert['id']}:{step}:{target.channel.name}:{target.recipient}"
            new_id = self.outbox.enqueue_id(key, target.channel, target.recipient, alert["severity"], body,
                                            alert_id=alert["id"], incident_id=alert.get("incident_id"), conn=conn,
                                            claim=claim)
            if new_id is not None:
                ids.append(new_id)
        return ids

    def alert_opened(self, alert: dict[str, Any], group: Grouping) -> None:
        """A new incident, or a more severe alert in one, is notified; the rest of an incident is not."""
        if group.is_new or group.raised:
            self._send(alert, "new", self._now())

    # --- timed checks ---------------------------------------------------------------------------------

    def check(self) -> int:
        """Escalations, unstaffed shifts, arming pushes; returns escalation steps taken and alerts opened."""
        now = self._now()
        done = self.check_escalations(now) + self.check_shifts(now)
        self.push_arming(now)
        return done

    def check_escalations(self, now: datetime) -> int:
        with self._engine.connect() as conn:
            waiting = conn.execute(select(incidents).where(and_(
                incidents.c.closed == False, incidents.c.acked_at.is_(None)))).all()  # noqa: E712
            fired: dict[int, set[str]] = {}
            ids = [r.id for r in waiting]
            if ids:
                for r in conn.execute(select(escalations).where(escalations.c.incident_id.in_(ids))):
                    fired.setdefault(r.incident_id, set()).add(r.step)
        taken = 0
        for incident in waiting:
            for step in due_steps(self._book.policy, incident.severity, clock_start(incident), False,
                                  fired.get(incident.id, set()), now):
                taken += self._escalate(incident, step.name, step.due_at, now)
        return taken

    def _escalate(self, incident: Any, step: str, due_at: datetime, now: datetime) -> int:
        with self._engine.connect() as conn:
            waiting = conn.execute(select(alerts.c.id, alerts.c.severity).where(and_(
                alerts.c.incident_id == incident.id, alerts.c.status == "open"))).all()
        if not waiting:
            return 0  # acknowledged meanwhile
        # The message is about the incident's most severe alert: the door, not the device that went offline.
        lead = min(waiting, key=lambda r: (SEVERITY_RANK.get(r.severity, 9), r.id))
        alert = self._book.get(lead.id)
        assert alert is not None
        try:
            with self._engine.begin() as conn:
                # The primary key makes the step fire once, whatever the number of server processes.
                conn.execute(insert(escalations).values(incident_id=incident.id, step=step, due_at=due_at,
                                                        fired_at=now))
                audit.record(conn, at=now, actor="system", action=f"escalate_{step}",
                             target=str(lead.id), detail={"incident": incident.id})
                self._send(alert, step, now, conn=conn)
        except IntegrityError:
            return 0
        if self._dispatcher is not None:
            self._dispatcher.wake()
        log.warning("event=escalated incident=%s step=%s alert=%s", incident.id, step, lead.id)
        self._book.refresh_incident(incident.id)
        return 1

    def check_shifts(self, now: datetime) -> int:
        """值班无人签到: a running shift nobody checked in to within the grace is an alert to the county."""
        grace = timedelta(minutes=self.roster.checkin_grace_minutes)
        opened = 0
        for room in self.roster.rooms:
            running = shifts_at(room, now, self._tz)
            checked = self._checked_in(room.id, [s.start for s in running])
            present = {(room.id, start) for start, users in checked.items() if users}
            for shift in unstaffed(running, present, now, grace):
                decision = shift_unstaffed(room.id, room.name, shift.name, shift.start, now)
                opened += self._book.apply(decision) is not None
        self._close_ended_shifts(now)
        return opened

    def _close_ended_shifts(self, now: datetime) -> None:
        """A 值班无人签到 whose shift is over can no longer be cleared by a check-in: it ends with the shift
        (the alert, its times and who acknowledged it stay on record for the reports)."""
        with self._engine.connect() as conn:
            waiting = conn.execute(select(alerts.c.key, alerts.c.detail).where(and_(
                alerts.c.rule == "shift_unstaffed", alerts.c.active_key.is_not(None)))).all()
        for row in waiting:
            room = next((r for r in self.roster.rooms if r.id == row.detail.get("room")), None)
            start = datetime.fromisoformat(row.detail["shift_start"])
            ended = room is None or not any(s.start == start for s in shifts_at(room, now, self._tz))
            if ended:
                self._book.apply(ResolveAlert(key=row.key, at=now, reason="shift ended without check-in"))

    def push_arming(self, now: datetime) -> int:
        """Tell each venue's agents when its arming state changes (retained, so a returning agent learns it)."""
        if self._publish_command is None:
            return 0
        with self._engine.connect() as conn:
            sent = {r.venue_id: r for r in conn.execute(select(arming_sent))}
        pushed = 0
        for venue in self._inventory.venues.values():
            state = self.arming.state(venue, now)
            before = sent.get(venue.id)
            if before is not None and before.armed == state.armed and before.until == state.until:
                continue
            command = Command(cmd="arm" if state.armed else "disarm", args={
                "until": state.until.isoformat() if state.until else None, "source": state.source})
            for device in venue.devices:
                self._publish_command(device, command)
            with self._engine.begin() as conn:
                values = {"armed": state.armed, "until": state.until, "sent_at": now}
                if before is None:
                    conn.execute(insert(arming_sent).values(venue_id=venue.id, **values))
                else:
                    conn.execute(arming_sent.update().where(arming_sent.c.venue_id == venue.id).values(**values))
            pushed += 1
        return pushed

    # --- shifts: check-in and handover -----------------------------------------------------------------

    def room(self, room_id: str) -> Room:
        for room in self.roster.rooms:
            if room.id == room_id:
                return room
        raise DutyError(f"duty room {room_id!r} not found", 404, (N_("找不到值班室“%(room)s”"), {"room": room_id}))

    def visible_rooms(self, township: str | None, everything: bool) -> list[Room]:
        return [r for r in self.roster.rooms if everything or (township is not None and r.township == township)]

    def _checkin_shift(self, room: Room, user: str, now: datetime) -> ShiftInstance:
        early = timedelta(minutes=self.roster.checkin_early_minutes)
        candidates = [s for s in instances(room, now, now + early, self._tz) if user in s.staff and s.end > now]
        if not candidates:
            raise DutyError(f"{user} is not on a shift of {room.name} now", 409,
                            (N_("您当前不在%(room)s的班次上（签到在班次开始前 %(minutes)s 分钟开放）"),
                             {"room": room.name, "minutes": int(self.roster.checkin_early_minutes)}))
        return candidates[0]

    def checkin(self, room_id: str, user: str) -> dict[str, Any]:
        """签到: `user` takes their running (or about to start) shift in `room_id`."""
        now = self._now()
        room = self.room(room_id)
        shift = self._checkin_shift(room, user, now)
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(shift_checkins).values(room=room.id, shift_start=shift.start, user=user, at=now))
                audit.record(conn, at=now, actor=user, action="shift_checkin", target=room.id,
                             detail={"shift": shift.name, "start": shift.start.isoformat()})
        except IntegrityError:
            pass  # checked in already: a second click changes nothing
        self._book.apply(shift_staffed(room.id, shift.start, now))
        return self.room_view(room, now)

    def handover(self, room_id: str, user: str, text: str) -> dict[str, Any]:
        """交班记录: a note for the next shift, written by someone on (or just finishing) a shift here."""
        text = text.strip()
        if not text or len(text) > MAX_HANDOVER:
            raise DutyError(f"text must be 1 to {MAX_HANDOVER} characters", 400,
                            (N_("交班记录不能为空，最多 %(max)s 字"), {"max": MAX_HANDOVER}))
        now = self._now()
        room = self.room(room_id)
        mine = [s for s in instances(room, now - timedelta(hours=2), now + timedelta(seconds=1), self._tz)
                if user in s.staff]
        if not mine:
            raise DutyError(f"{user} has no shift in {room.name} now or in the last two hours", 409,
                            (N_("您现在（及两小时内）不在%(room)s的班次上，不能写交班记录"), {"room": room.name}))
        shift = mine[-1]
        with self._engine.begin() as conn:
            conn.execute(insert(handovers).values(room=room.id, shift_start=shift.start, user=user, at=now, text=text))
            audit.record(conn, at=now, actor=user, action="handover", target=room.id,
                         detail={"shift_start": shift.start.isoformat(), "length": len(text)})
        return self.room_view(room, now)

    def _checked_in(self, room_id: str, starts: list[datetime]) -> dict[datetime, list[str]]:
        if not starts:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(select(shift_checkins).where(and_(
                shift_checkins.c.room == room_id, shift_checkins.c.shift_start.in_(starts)))).all()
        found: dict[datetime, list[str]] = {start: [] for start in starts}
        for r in rows:
            found.setdefault(r.shift_start, []).append(r.user)
        return found

    def room_view(self, room: Room, now: datetime | None = None) -> dict[str, Any]:
        """What the console's shift panel shows for one duty room."""
        now = now or self._now()
        running = shifts_at(room, now, self._tz)
        upcoming = [s for s in instances(room, now, now + timedelta(days=2), self._tz) if s.start > now][:1]
        checked = self._checked_in(room.id, [s.start for s in running + upcoming])
        names = {p.user: p.name or p.user for p in self.roster.people}

        def shift_json(s: ShiftInstance) -> dict[str, Any]:
            return {"name": s.name, "start": s.start.isoformat(), "end": s.end.isoformat(),
                    "staff": [{"user": u, "name": names.get(u, u)} for u in s.staff],
                    "checked_in": checked.get(s.start, [])}

        notes: list[dict[str, Any]] = []
        if running:
            before = previous_shift(room, running[0], self._tz)
            since = before.start if before else running[0].start - timedelta(days=1)
            with self._engine.connect() as conn:
                rows = conn.execute(select(handovers).where(and_(
                    handovers.c.room == room.id, handovers.c.at >= since)).order_by(handovers.c.at)).all()
            notes = [{"user": r.user, "name": names.get(r.user, r.user), "at": r.at.isoformat(), "text": r.text,
                      "from_previous_shift": r.shift_start < running[0].start} for r in rows]
        return {"id": room.id, "name": room.name, "township": room.township,
                "leader": names.get(room.leader, room.leader) if room.leader else None,
                "current": [shift_json(s) for s in running], "next": [shift_json(s) for s in upcoming],
                "handover": notes}
