"""Build, store and find nightly reports; rebuild a day when late data for it arrives.

Every build adds a revision: the figures (JSON) go into the `reports` table, the PDF into
data_dir/reports/<day>/. HTML and CSV are rendered from the stored figures when asked for, so an old
revision always reads exactly as it was built. The latest figures per venue and day also go into
`venue_days`, which the county review reads.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter as time_counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, delete, func, insert, select

from server.calendar import NationalCalendar
from server.ingest import write_durably
from server.inventory import Inventory
from server.reports import render
from server.reports.collect import collect_day, day_bounds
from server.reports.figures import notable_events, scope_figures, venue_figures
from server.roster import RosterFile
from server.store import events, reports, snapshots, venue_days

log = logging.getLogger("venuewatch.server.reports")
COUNTY = "county"
LATE_OVERLAP_S = 120


@dataclass(frozen=True)
class Built:
    day: str
    scope: str
    revision: int
    pdf: Path | None


class ReportArchive:
    def __init__(self, engine: Engine, inventory: Inventory, national: NationalCalendar, tz: ZoneInfo,
                 data_dir: Path, roster: RosterFile | None = None, lang: str = "zh",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.inventory = inventory
        self.national = national
        self.tz = tz
        self.dir = Path(data_dir) / "reports"
        self.roster = roster
        self.lang = lang
        self.now = now
        self._lock = threading.Lock()  # one build at a time per process
        self.last_timings: dict[str, float] = {}
        self._checked_until: datetime | None = None  # late data received before this has been looked at

    # --- scopes ---------------------------------------------------------------------------------------------

    def scopes(self) -> dict[str, str]:
        """scope id -> name: the county first, then every township."""
        out = {COUNTY: self.inventory.county_name}
        for t in self.inventory.data.townships:
            out[t.id] = t.name
        return out

    def _venues_of(self, scope: str) -> list[str]:
        return [v.id for v in self.inventory.venues.values() if scope == COUNTY or v.township_id == scope]

    def _rooms_of(self, scope: str) -> list[str] | None:
        if self.roster is None or scope == COUNTY:
            return None
        return [r.id for r in self.roster.rooms if r.township == scope]

    # --- building -------------------------------------------------------------------------------------------

    def build(self, day: date, reason: str = "manual", scopes: Iterable[str] | None = None,
              pdf: bool = True) -> list[Built]:
        """Build the reports of `day` (all scopes unless given), each as a new revision."""
        with self._lock:
            built_at = self.now()
            started = time_counter()
            data = collect_day(self.engine, self.inventory, self.national, self.tz, day, self.roster, built_at)
            collected = time_counter()
            per_venue = venue_figures(data)
            notable = notable_events(data)
            names = self.scopes()
            wanted = list(names) if scopes is None else [s for s in names if s in set(scopes)]
            out = []
            with self.engine.begin() as conn:
                for scope in wanted:
                    figures = scope_figures(data, self._venues_of(scope), per_venue, self._rooms_of(scope), notable)
                    revision = (conn.execute(select(func.max(reports.c.revision)).where(and_(
                        reports.c.day == day.isoformat(), reports.c.scope == scope))).scalar() or 0) + 1
                    figures.update(day=day.isoformat(), scope=scope, scope_name=names[scope], revision=revision,
                                   built_at=built_at.isoformat(), reason=reason)
                    conn.execute(insert(reports).values(day=day.isoformat(), scope=scope, revision=revision,
                                                        built_at=built_at, reason=reason, figures=figures))
                    out.append((scope, revision, figures))
                conn.execute(delete(venue_days).where(and_(venue_days.c.day == day.isoformat(),
                                                           venue_days.c.venue_id.in_(list(per_venue)))))
                conn.execute(insert(venue_days), [
                    {"day": day.isoformat(), "venue_id": vid, "township_id": row["township_id"], "figures": row}
                    for vid, row in per_venue.items()])
            stored = time_counter()
            paths = self._write_pdfs([f for _, _, f in out], self.lang) if pdf else [None] * len(out)
            results = [Built(day.isoformat(), scope, revision, path)
                       for (scope, revision, _), path in zip(out, paths, strict=True)]
            self.last_timings = {"collect_s": collected - started, "figures_store_s": stored - collected,
                                 "print_s": time_counter() - stored}
            log.info("event=reports_built day=%s reason=%s scopes=%d events=%d collect_s=%.1f figures_s=%.1f "
                     "print_s=%.1f", day, reason, len(out), len(data.events), *self.last_timings.values())
            return results

    def _pdf_path(self, figures: dict[str, Any], lang: str) -> Path:
        return self.dir / figures["day"] / f"{figures['scope']}-r{figures['revision']}.{lang}.pdf"

    def _print_job(self, figures: dict[str, Any], lang: str) -> tuple[dict[str, Any], str, str, dict[str, str], Path]:
        return figures, lang, self.tz.key, self.snapshot_files(figures), self._pdf_path(figures, lang)

    def _write_pdf(self, figures: dict[str, Any], lang: str) -> Path:
        return print_report(*self._print_job(figures, lang))

    def _write_pdfs(self, many: list[dict[str, Any]], lang: str) -> list[Path]:
        """Print several reports on every core: charts and WeasyPrint's layout are pure Python (the GIL)."""
        jobs = [self._print_job(f, lang) for f in many]
        workers = min(len(jobs), os.cpu_count() or 1)
        if workers <= 1:
            return [print_report(*job) for job in jobs]
        # spawn, not fork: this runs beside the server's threads, and a forked copy of them is unsafe.
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                return list(pool.map(print_report, *zip(*jobs, strict=True)))
        except (BrokenProcessPool, OSError) as exc:
            # A worker that could not start (no memory, a host program without a __main__ guard): print here.
            log.warning("event=report_print_pool_failed error=%r fallback=in_process", exc)
            return [print_report(*job) for job in jobs]

    def snapshot_files(self, figures: dict[str, Any]) -> dict[str, str]:
        ids = [s for key in ("after_hours", "tamper") for e in figures[key][:render.MAX_THUMB_EVENTS]
               for s in e["snapshots"][:3]]
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(snapshots.c.id, snapshots.c.path).where(snapshots.c.id.in_(ids))).all()
        return {r.id: Path(r.path).resolve().as_uri() for r in rows if Path(r.path).is_file()}

    # --- reading --------------------------------------------------------------------------------------------

    def get(self, day: str, scope: str, revision: int | None = None) -> dict[str, Any] | None:
        """The figures of a report: the latest revision unless one is asked for."""
        query = select(reports.c.figures).where(and_(reports.c.day == day, reports.c.scope == scope))
        if revision is not None:
            query = query.where(reports.c.revision == revision)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(reports.c.revision.desc()).limit(1)).first()
        return None if row is None else row.figures

    def pdf_bytes(self, figures: dict[str, Any], lang: str) -> bytes:
        path = self._pdf_path(figures, lang)
        if not path.is_file():  # another language, or a PDF lost with the disk: print it again
            path = self._write_pdf(figures, lang)
        return path.read_bytes()

    def listing(self, scopes: set[str] | None = None, limit_days: int = 400) -> list[dict[str, Any]]:
        """Every report (latest revision first), newest day first; `scopes` restricts what a user may see."""
        r = reports.c
        query = select(r.day, r.scope, r.revision, r.built_at, r.reason).order_by(
            r.day.desc(), r.scope, r.revision.desc())
        if scopes is not None:
            query = query.where(r.scope.in_(sorted(scopes)))
        names = self.scopes()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                key = (row.day, row.scope)
                if key not in out:
                    if len({d for d, _ in out}) >= limit_days and row.day not in {d for d, _ in out}:
                        break
                    out[key] = {"day": row.day, "scope": row.scope, "scope_name": names.get(row.scope, row.scope),
                                "revision": row.revision, "built_at": row.built_at.isoformat(),
                                "reason": row.reason, "revisions": []}
                out[key]["revisions"].append(row.revision)
        return list(out.values())

    # --- the schedule ---------------------------------------------------------------------------------------

    def due_nightly(self, now: datetime, build_after: time) -> date | None:
        """Yesterday's date once the local clock has passed `build_after`, if its county report is missing."""
        local = now.astimezone(self.tz)
        if local.time() < build_after:
            return None
        yesterday = local.date() - timedelta(days=1)
        with self.engine.connect() as conn:
            done = conn.execute(select(reports.c.id).where(and_(
                reports.c.day == yesterday.isoformat(), reports.c.scope == COUNTY)).limit(1)).first()
        return None if done else yesterday

    def late_scopes(self, first_day: date, last_day: date, since: datetime, now: datetime) -> dict[date, set[str]]:
        """Scopes of days in [first_day, last_day] whose latest build predates events received in (since, now].

        Reads only what arrived since the previous check (an index on received_at), not days of events.
        """
        start, end = day_bounds(first_day, self.tz)[0], day_bounds(last_day, self.tz)[1]
        e = events.c
        # Only received_at in SQL: with occurred_at too, SQLite (no statistics) may walk 7 days of events by
        # their time instead of the few that arrived in the last minute. The days are picked out below.
        query = select(e.venue_id, e.occurred_at, e.received_at).where(and_(e.received_at > since,
                                                                            e.received_at <= now))
        with self.engine.connect() as conn:
            arrivals = [r for r in conn.execute(query) if start <= r.occurred_at < end]
            if not arrivals:
                return {}
            built: dict[tuple[str, str], datetime] = {
                (r.day, r.scope): r.at for r in conn.execute(
                    select(reports.c.day, reports.c.scope, func.max(reports.c.built_at).label("at")).where(and_(
                        reports.c.day >= first_day.isoformat(), reports.c.day <= last_day.isoformat())).group_by(
                        reports.c.day, reports.c.scope))}
        stale: dict[date, set[str]] = {}
        for venue_id, occurred, received in arrivals:
            venue = self.inventory.venues.get(venue_id)
            if venue is None:
                continue
            day = occurred.astimezone(self.tz).date()
            for scope in (COUNTY, venue.township_id):
                built_at = built.get((day.isoformat(), scope))
                if built_at is not None and received > built_at:
                    stale.setdefault(day, set()).add(scope)
        return stale

    def tick(self, build_after: time, late_days: int) -> list[Built]:
        """What the scheduler does each minute: last night's reports, then rebuilds for late data."""
        now = self.now()
        built: list[Built] = []
        day = self.due_nightly(now, build_after)
        if day is not None:
            built += self.build(day, "nightly")
        today = now.astimezone(self.tz).date()
        if late_days:
            # From the first check on, look back a day of arrivals once; then a minute at a time (with an overlap:
            # an event stamped just before our last look may have been committed just after it).
            since = self._checked_until or now - timedelta(days=1)
            for d, scopes in sorted(self.late_scopes(today - timedelta(days=late_days), today - timedelta(days=1),
                                                     since, now).items()):
                log.info("event=report_late_data day=%s scopes=%s", d, sorted(scopes))
                built += self.build(d, "late_data", scopes)
            self._checked_until = now - timedelta(seconds=LATE_OVERLAP_S)
        return built


def print_report(figures: dict[str, Any], lang: str, tz_name: str, files: dict[str, str], path: Path) -> Path:
    """Figures → printable HTML → PDF file, written whole (a reader never sees half a PDF).

    Top level and self-contained: it runs in worker processes.
    """
    text = render.html(figures, lang, ZoneInfo(tz_name), files.get, render.PRINT)
    write_durably(path, render.pdf(text))
    return path


class ReportScheduler:
    """A thread that calls ReportArchive.tick once a minute (the server's scheduler role)."""

    def __init__(self, archive: ReportArchive, build_after: time, late_days: int, interval_s: float = 60) -> None:
        self.archive = archive
        self.build_after = build_after
        self.late_days = late_days
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        # First wait: a server starting (or restarting in a crash loop) serves alerts before it prints reports.
        while not self._stop.wait(self.interval_s):
            try:
                self.archive.tick(self.build_after, self.late_days)
            except Exception:  # a failed build must not stop tomorrow's: log it and try again next minute
                log.exception("event=report_build_failed")
