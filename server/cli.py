"""`venuewatch` command line: server, demo, user, check-config. Errors are one clear message, exit 2."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import signal
import sys
import threading
from datetime import date
from pathlib import Path

from protocol.configfile import ConfigError
from protocol.progress import Progress

# As in DESIGN.md (`venuewatch user add NAME --role ROLE`): on the server the file has a home.
DEFAULT_CONFIG = os.environ.get("VENUEWATCH_CONFIG", "/etc/venuewatch/server.yaml")
CONFIG_ARG = {"default": DEFAULT_CONFIG, "help": f"server config (default: $VENUEWATCH_CONFIG or {DEFAULT_CONFIG})"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="venuewatch", description="venuewatch county server")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    # One process runs ingest, timed rules and web together; `--role` splits them (docs/scaling.md).
    p = sub.add_parser("server", help="run the server (ingest, web, timed rules), or one role of it")
    p.add_argument("--config", **CONFIG_ARG)
    p.add_argument("--role", default="all", choices=["all", "ingest", "web", "scheduler"],
                   help="all (default): one process; ingest: one of N processes sharing the broker's messages; "
                   "web: console and API; scheduler: timed rules, notifications, reports (run one)")
    p.add_argument("--instance", type=int, default=1, metavar="N",
                   help="--role ingest: this worker's number (1, 2, …); names its persistent broker session")

    p = sub.add_parser("demo", help="everything in one process on embedded defaults")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--mqtt-port", type=int, default=0, help="embedded broker port (0: a free one)")
    p.add_argument("--data-dir", type=Path, help="default: a new temporary directory")

    p = sub.add_parser("user", help="accounts and API tokens")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="county_admin, county_reviewer, township_duty, village_viewer")
    add.add_argument("--scope", help="township id (township_duty) or village id (village_viewer)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--config", **CONFIG_ARG)
    tok = user_sub.add_parser("token", help="create an API token (shown once)")
    tok.add_argument("name")
    tok.add_argument("--config", **CONFIG_ARG)
    revoke = user_sub.add_parser("revoke-token", help="revoke a user's API tokens (all, or one by --id)")
    revoke.add_argument("name")
    revoke.add_argument("--id", type=int, help="token id (from GET /api/v1/me/tokens); default: all of them")
    revoke.add_argument("--config", **CONFIG_ARG)
    for verb, what in (("disable", "end the user's sessions and tokens now and refuse logins"),
                       ("enable", "allow a disabled user to log in again")):
        toggle = user_sub.add_parser(verb, help=what)
        toggle.add_argument("name")
        toggle.add_argument("--config", **CONFIG_ARG)

    p = sub.add_parser("audit", help="the hash-chained audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    check = audit_sub.add_parser("verify", help="check that no audit entry was changed or deleted")
    check.add_argument("--config", **CONFIG_ARG)

    p = sub.add_parser("report", help="nightly reports and the monthly county review")
    report_sub = p.add_subparsers(dest="report_command", required=True)
    nightly = report_sub.add_parser("nightly", help="build (or rebuild, as a new revision) one day's reports")
    nightly.add_argument("--date", type=_iso_date, help="local date YYYY-MM-DD (default: yesterday)")
    nightly.add_argument("--to", type=_iso_date, metavar="DATE",
                         help="rebuild every day from --date to DATE (inclusive), with progress on stderr")
    nightly.add_argument("--no-progress", action="store_true", help="no progress or summary on stderr")
    nightly.add_argument("--out", type=Path, help="also write every report as HTML, PDF and CSV into this folder")
    nightly.add_argument("--lang", choices=["zh", "en"], help="language of the files (default: reports.lang)")
    nightly.add_argument("--if-missing", action="store_true",
                         help="do nothing when the day's reports exist already (for a systemd timer)")
    nightly.add_argument("--config", **CONFIG_ARG)
    monthly = report_sub.add_parser("monthly", help="the county review of one month as PDF and CSV")
    monthly.add_argument("--month", type=_iso_month, help="YYYY-MM (default: last month)")
    monthly.add_argument("--out", type=Path, default=Path("."), help="folder for the files (default: here)")
    monthly.add_argument("--lang", choices=["zh", "en"], help="language (default: reports.lang)")
    monthly.add_argument("--config", **CONFIG_ARG)

    p = sub.add_parser("check-config", help="validate a server, inventory, device or scenario file")
    p.add_argument("file", type=Path)
    p.add_argument("--device", type=Path, help="device config, to check a scenario against its doors")

    _add_provision(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "server":
            return _server(args.config, args.role, args.instance)
        if args.command == "demo":
            from server.demo import run_demo

            return run_demo(args.http_port, args.mqtt_port, args.data_dir)
        if args.command == "user":
            return _user(args)
        if args.command == "report":
            return _report(args)
        if args.command == "audit":
            return _audit_verify(args.config)
        if args.command == "provision":
            from server.provision import run

            code = run(args, DEFAULT_CONFIG)
            if code == 0:
                # a fleet is audited as its CSV file: the file names every device
                target = getattr(args, "id", None) or (str(args.csv) if hasattr(args, "csv") else None)
                _audit_change(getattr(args, "config", None), f"provision_{args.provision_command}", target)
            return code
        return _check_config(args.file, args.device)
    except ConfigError as exc:
        print(f"venuewatch: configuration error\n{exc}", file=sys.stderr)
        return 2


def _add_provision(sub: argparse._SubParsersAction) -> None:
    """`venuewatch provision ca|device|fleet|revoke`; the work is in server/provision/ (docs/provisioning.md)."""
    from server.provision import DEFAULT_ACL, DEFAULT_PASSWD, SERVER_CERT_DAYS

    p = sub.add_parser("provision", help="county CA, device MQTT accounts and bundles, revocation")
    prov = p.add_subparsers(dest="provision_command", required=True)
    ca = prov.add_parser("ca", help="create the county CA and the broker's certificate (once)")
    ca.add_argument("--out", type=Path, required=True, help="folder for ca.crt, ca.key, server.crt, server.key")
    ca.add_argument("--host", action="append", help="broker name or IP address the Pis use (repeat; default: "
                    "localhost and 127.0.0.1)")
    ca.add_argument("--days", type=int, default=SERVER_CERT_DAYS, help="validity of the broker certificate")
    passwd = {"type": Path, "default": DEFAULT_PASSWD, "help": f"mosquitto password file (default {DEFAULT_PASSWD})"}
    inventory = {"type": Path, "help": "inventory YAML (default: the one the server config names)"}
    config = {"type": Path, "help": f"server config, for defaults (default: {DEFAULT_CONFIG} if it exists)"}
    dev = prov.add_parser("device", help="MQTT account, inventory entry and installer bundle for a new device")
    dev.add_argument("id", help="device id, also its MQTT username, e.g. pi-0009")
    dev.add_argument("--venue", required=True, help="venue id in the inventory")
    dev.add_argument("--doors", default="front", help="door ids, optionally with BCM pins: front,back or "
                     "front:17,back:27 (default: front)")
    fleet = prov.add_parser("fleet", help="MQTT accounts, inventory entries and bundles for every device of a CSV "
                            "file; all rows are checked before anything is written")
    fleet.add_argument("csv", type=Path, help="CSV with a header row: device,venue[,doors][,cameras] "
                       "(docs/provisioning.md)")
    fleet.add_argument("--no-progress", action="store_true", help="no progress or summary on stderr")
    for parser in (dev, fleet):  # the settings every device of a run shares
        parser.add_argument("--inventory", **inventory)
        parser.add_argument("--passwd", **passwd)
        parser.add_argument("--acl", type=Path, default=DEFAULT_ACL,
                            help=f"mosquitto ACL to check (default {DEFAULT_ACL})")
        parser.add_argument("--broker-url", help="what the Pi connects to, e.g. mqtts://mqtt.venuewatch.lan:8883 "
                            "(default: the server config's broker.url)")
        parser.add_argument("--ca-file", type=Path, help="county ca.crt to put in the bundle (default: the server's)")
        parser.add_argument("--out", type=Path, default=Path("."), help="the bundle goes to OUT/ID/ (default: here)")
        parser.add_argument("--firmware-dir", type=Path,
                            help="also write the device file (no password) to DIR/ID.yaml")
        parser.add_argument("--config", **config)
    rev = prov.add_parser("revoke", help="remove a device's MQTT account and inventory entry")
    rev.add_argument("id")
    rev.add_argument("--inventory", **inventory)
    rev.add_argument("--passwd", **passwd)
    rev.add_argument("--config", **config)


def _load(config_path: str):
    from server.config import load_server_config
    from server.inventory import load_inventory

    config = load_server_config(config_path)
    return config, load_inventory(config.inventory)


def _server(config_path: str, role: str = "all", instance: int = 1) -> int:
    from server.app import VenueWatchServer

    config, inventory = _load(config_path)
    server = VenueWatchServer(config, inventory, role=role, instance=instance)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    logging.getLogger("venuewatch.server").info("event=server_started role=%s%s", role,
                                                f" instance={instance}" if role == "ingest" else "")
    if server.http:
        # One write: with PYTHONUNBUFFERED, print() writes text and newline separately and a log line from
        # another thread could land in between, breaking scripts that read this line.
        sys.stdout.write(f"venuewatch: console at {server.url}\n")
        sys.stdout.flush()
    stop.wait()
    server.stop()
    return 0


def _user(args: argparse.Namespace) -> int:
    from server.app import open_store
    from server.users import UserError, add_user, check_new_user, new_token, revoke_tokens, set_disabled

    config, inventory = _load(args.config)
    engine = open_store(config, inventory)
    try:
        if args.user_command == "token":
            print(new_token(engine, args.name))
            return 0
        if args.user_command == "revoke-token":
            count = revoke_tokens(engine, args.name, "cli", args.id)
            print(f"{count} token(s) of {args.name} revoked")
            return 0 if count or args.id is None else 2
        if args.user_command in ("disable", "enable"):
            set_disabled(engine, args.name, args.user_command == "disable", "cli")
            print(f"user {args.name} {args.user_command}d")
            return 0
        check_new_user(args.name, args.role, args.scope, inventory)
        password, generated = _password(args.password_stdin)
        add_user(engine, inventory, args.name, args.role, args.scope, password)
    except UserError as exc:
        print(f"venuewatch user: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name} created ({args.role}{', ' + args.scope if args.scope else ''})")
    if generated:
        print(f"password (shown once, change it after first login): {password}")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-25") from None


def _iso_month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; write YYYY-MM, e.g. 2026-11") from None


def _report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from server.app import load_server_roster, open_store
    from server.calendar import NationalCalendar
    from server.reports import render
    from server.reports.archive import ReportArchive
    from server.reports.review import load_review, month_days
    from server.reports.text import monthly_title

    config, inventory = _load(args.config)
    engine = open_store(config, inventory)
    national = NationalCalendar(config.calendar.extra_holidays, config.calendar.extra_workdays)
    lang = args.lang or config.reports.lang
    archive = ReportArchive(engine, inventory, national, config.tz, config.data_dir,
                            load_server_roster(config, inventory), lang)
    today = datetime.now(UTC).astimezone(config.tz).date()
    if args.report_command == "monthly":
        first = args.month or (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        review = load_review(engine, inventory, month_days(first), None)
        title = monthly_title(inventory.county_name, f"{first:%Y-%m}", lang)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"review-{first:%Y-%m}"
        html_text = render.review_html(review, lang, config.tz, title, datetime.now(UTC))
        stem.with_suffix(".pdf").write_bytes(render.pdf(html_text))
        stem.with_suffix(".csv").write_text(render.review_csv(review), encoding="utf-8")
        print(f"{stem}.pdf\n{stem}.csv")
        return 0
    first = args.date or today - timedelta(days=1)
    if args.to is not None and args.to < first:
        print(f"venuewatch report nightly: --to {args.to} is before --date {first}; give the first day with --date "
              "and the last with --to", file=sys.stderr)
        return 2
    days = [first + timedelta(days=n) for n in range(((args.to or first) - first).days + 1)]
    with Progress("report nightly", len(days), unit="days", enabled=not args.no_progress) as progress:
        for day in days:
            _report_day(args, archive, day, lang, config.tz, progress)
            progress.advance()
    return 0


def _report_day(args: argparse.Namespace, archive, day: date, lang: str, tz, progress: Progress) -> None:
    """Build one day's reports (unless --if-missing and they exist); one stdout line per scope built."""
    from server.reports import render

    if args.if_missing and archive.get(day.isoformat(), "county") is not None:
        progress.clear_for(sys.stdout)
        print(f"{day} reports exist already; nothing to do", flush=True)
        return
    for built in archive.build(day, "nightly" if args.if_missing else "manual"):
        figures = archive.get(built.day, built.scope, built.revision)
        assert figures is not None
        line = f"{built.day} {built.scope} revision {built.revision}"
        if args.out:
            folder = args.out / built.day
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{built.scope}-r{built.revision}"
            files = archive.snapshot_files(figures)
            stem.with_suffix(".html").write_text(
                render.html(figures, lang, tz, lambda sid, f=files: f.get(sid)), encoding="utf-8")
            stem.with_suffix(".csv").write_text(render.csv_text(figures, lang), encoding="utf-8")
            stem.with_suffix(".pdf").write_bytes(archive.pdf_bytes(figures, lang))
            line += f": {stem}.html .pdf .csv"
        progress.clear_for(sys.stdout)
        print(line, flush=True)


def _audit_change(config_path: Path | None, action: str, target: str | None) -> None:
    """Put a change made from the command line (device provisioned or revoked) on the audit chain, when
    the server's config (and so its database) is at hand; who: the login that ran the command."""
    from datetime import UTC, datetime

    from server import audit
    from server.app import open_store

    path = Path(config_path) if config_path else Path(DEFAULT_CONFIG)
    if not path.is_file():
        return
    config, inventory = _load(str(path))
    engine = open_store(config, inventory)
    actor = os.environ.get("SUDO_USER") or getpass.getuser()
    with engine.begin() as conn:
        audit.record(conn, datetime.now(UTC), f"cli:{actor}", action, target)
    engine.dispose()


def _audit_verify(config_path: str) -> int:
    from server import audit
    from server.app import open_store

    config, inventory = _load(config_path)
    verdict = audit.verify(open_store(config, inventory))
    if verdict.ok:
        print(f"audit log intact: {verdict.entries} entries, head {verdict.head_hash}")
        return 0
    print(f"audit log damaged ({verdict.entries} entries read):")
    for problem in verdict.problems:
        print(f"  - {problem}")
    return 1


def _password(from_stdin: bool) -> tuple[str, bool]:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise SystemExit("venuewatch user: the two passwords differ")
        return first, False
    # No terminal and no --password-stdin (e.g. a provisioning script): never invent a guessable default.
    return secrets.token_urlsafe(12), True


def _check_config(path: Path, device: Path | None) -> int:
    from server.configcheck import check_file

    print(check_file(path, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
