"""`provision fleet`: many devices from one CSV file, every row checked before anything is written.

The CSV (docs/provisioning.md, "Many devices at once") has a header row naming its columns, in any order:

- `device` (required): the device id, also its MQTT username;
- `venue` (required): a venue id of the inventory;
- `doors` (optional, default `front`): as `provision device --doors`; quote it when it has a comma: "front,back";
- `cameras` (optional): `ID SOURCE [DOOR …]` (camera id, its source as in the device file, the doors it sees),
  several separated by `;`.

Order of the writes, chosen so that a run killed part-way (power cut, ^C, a full disk) can simply be run again:

1. every bundle is made in one private staging folder `OUT/._fleet-XXXX/`, whose `devices` file lists the run's
   ids first; nothing shared is touched yet, so a crash here leaves only that folder;
2. the password file gets every new line in one atomic replace; 3. the inventory gets every entry in one save;
4. each bundle is renamed to `OUT/ID/`, and the staging folder is removed.

A rerun finds the leftover staging folder. A device it lists whose password line verifies against a password that
run made (in its staged bundle, or in `OUT/ID/` once moved) was written by the interrupted run, not by someone
else: its password line, inventory entry and bundle are replaced with new ones instead of being refused.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from protocol.progress import Progress
from server.provision.device import (
    CA_FILE,
    PASSWORD_FILE,
    DeviceRequest,
    acl_note,
    check_ca_file,
    check_device_id,
    check_in_inventory,
    check_passwd_folder,
    check_venue,
    device_config,
    parse_doors,
    reload_hint,
    run_notes,
    shared_settings,
    write_bundle,
    write_firmware_file,
)
from server.provision.errors import ProvisionError
from server.provision.files import inventory_lock, write_new_file
from server.provision.inventory_edit import InventoryFile
from server.provision.passwd import passwd_users, set_passwords, verify_password

COLUMNS = ("device", "venue", "doors", "cameras")
REQUIRED = ("device", "venue")
DEFAULT_DOORS = "front"
# A device id starts with a letter or digit, so `provision device`'s staging folders (`.ID.xxxx`) never match.
STAGING_PREFIX = "._fleet-"
MANIFEST = "devices"
T = TypeVar("T")
_CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class FleetError(ProvisionError):
    """Bad rows of the CSV: one line each, naming file:line, the column and the fix."""

    def __init__(self, path: Path, problems: list[str], bad_rows: int, rows: int) -> None:
        self.problems = problems
        super().__init__(f"{path}: {bad_rows} of {rows} rows cannot be provisioned; nothing was changed. "
                         "Fix these and run again:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class FleetRow:
    """One CSV row as written, with its line number for messages."""

    line: int
    cells: dict[str, str]


@dataclass
class FleetRequest:
    """`provision fleet`: the CSV and the settings every device shares (a DeviceRequest without a device)."""

    csv: Path
    template: DeviceRequest

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_config: str) -> FleetRequest:
        return cls(csv=args.csv, template=DeviceRequest(device="", venue="", doors=[],
                                                        **shared_settings(args, default_config)))


def read_rows(path: Path) -> list[FleetRow]:
    """The CSV's data rows; a header problem is one line (no row can be read without it)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # utf-8-sig: a spreadsheet's export may start with a BOM
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read the fleet file ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise ProvisionError(f"{path}: not UTF-8 text; save it from the spreadsheet as \"CSV UTF-8\"") from None
    reader = csv.reader(text.splitlines(keepends=True))  # with the line ends, as csv wants them
    header: list[str] | None = None
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue  # blank lines and `#` comment lines are for the people who keep the file
        if header is None:
            header = [c.strip().lower() for c in cells]
            _check_header(path, reader.line_num, header)
            continue
        # Cells beyond the header (an unquoted "front,back") are kept under "" so the row can say so.
        values = {"": ",".join(cells[len(header):])} if len(cells) > len(header) else {}
        values.update({column: cell.strip() for column, cell in zip(header, cells, strict=False)})
        rows.append(FleetRow(reader.line_num, values))
    if header is None or not rows:
        raise ProvisionError(f"{path}: no devices in it; the first line names the columns "
                             f"({', '.join(COLUMNS)}) and each further line is one device")
    return rows


def _check_header(path: Path, line: int, header: list[str]) -> None:
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ProvisionError(f"{path}:{line}: column {unknown[0]!r} is not known; the columns are "
                             f"{', '.join(COLUMNS)} (device and venue required)")
    missing = [c for c in REQUIRED if c not in header]
    twice = [c for c, n in Counter(header).items() if n > 1]
    if missing or twice:
        raise ProvisionError(f"{path}:{line}: the header " + (f"has no {missing[0]!r} column" if missing else
                                                             f"names {twice[0]!r} twice") +
                             f"; the columns are {', '.join(COLUMNS)} (device and venue required)")


def parse_cameras(text: str, doors: list[str]) -> list[tuple[str, str, list[str]]]:
    """`hall /dev/video0 front back; yard rtsp://10.0.0.5/s1 side`: (camera id, source, doors it sees)."""
    cameras: list[tuple[str, str, list[str]]] = []
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        camera, *rest = item.split()
        if not _CAMERA_ID.match(camera):
            raise ProvisionError(f"{camera!r} is not a camera id; use lowercase letters, digits, '-' and '_' "
                                 "(e.g. hall /dev/video0 front)")
        if not rest:
            raise ProvisionError(f"camera {camera!r} has no source; write `{camera} /dev/video0 front` "
                                 "(id, source, the doors it sees); if it is a door, put the doors in quotes: "
                                 "\"front,back\"")
        source, covers = rest[0], rest[1:]
        for door in covers:
            if door not in doors:
                raise ProvisionError(f"camera {camera!r} sees door {door!r}, which is not in this row's doors "
                                     f"({', '.join(doors)}); add the door or correct the name")
        if camera in (c for c, _, _ in cameras):
            raise ProvisionError(f"camera {camera!r} is given twice; each camera needs its own id")
        cameras.append((camera, source, covers))
    return cameras


@dataclass
class _Plan:
    """A checked row: the device's request and whether an interrupted run of ours left it half-written."""

    line: int
    request: DeviceRequest
    leftover: bool


def find_leftovers(out: Path, users: dict[str, str]) -> tuple[set[str], list[tuple[Path, list[str]]]]:
    """Devices an interrupted fleet run got as far as the password file with, and its staging folders."""
    ours: set[str] = set()
    folders = []
    for folder in sorted(out.glob(f"{STAGING_PREFIX}*")) if out.is_dir() else []:
        try:
            listed = (folder / MANIFEST).read_text(encoding="utf-8").split()
        except OSError:
            continue  # not made by this command (no list of devices): never touched
        folders.append((folder, listed))
        for device in listed:
            encoded = users.get(device)
            for bundle in (folder / device, out / device):
                try:
                    password = (bundle / PASSWORD_FILE).read_text(encoding="utf-8").strip()
                except OSError:
                    continue
                if encoded is not None and verify_password(encoded, password):
                    ours.add(device)
                    break
    return ours, folders


def check_rows(path: Path, rows: list[FleetRow], template: DeviceRequest, inventory: InventoryFile,
               users: dict[str, str], ours: set[str]) -> tuple[list[_Plan], list[str], int]:
    """Every row checked (not only up to the first bad one): the plans, one problem line per bad cell, and how
    many rows are bad."""
    plans, problems = [], []
    first_line: dict[str, int] = {}
    for row in rows:
        before = len(problems)
        request = _check_row(row, template, inventory, users, ours, first_line,
                             lambda column, message, line=row.line: problems.append(f"{path}:{line}: {column}: "
                                                                                    f"{message}"))
        if request is not None and len(problems) == before:
            plans.append(_Plan(row.line, request, request.device in ours))
    return plans, problems, len(rows) - len(plans)


def _check_row(row: FleetRow, template: DeviceRequest, inventory: InventoryFile, users: dict[str, str],
               ours: set[str], first_line: dict[str, int], bad: Callable[[str, str], None]) -> DeviceRequest | None:
    """One row's problems go to `bad(column, message)`; the device's request if all its cells are good."""
    problems = []

    def noted(column: str, message: str) -> None:
        problems.append(column)
        bad(column, message)

    request = _read_row(row, template, inventory, users, ours, first_line, noted)
    # The agent's own model sees what the columns alone do not (a camera id that is also a door id); asked only
    # of an otherwise good row, so one mistake is not reported twice.
    if request is None or problems:
        return None
    try:
        device_config(request, PASSWORD_FILE, CA_FILE)
    except ProvisionError as exc:
        detail = re.sub(r"; check --broker-url.*$", "", str(exc))
        bad("cameras" if request.cameras else "doors", f"{detail}; correct the doors and cameras of this row")
        return None
    return request


def _read_row(row: FleetRow, template: DeviceRequest, inventory: InventoryFile, users: dict[str, str],
              ours: set[str], first_line: dict[str, int], bad: Callable[[str, str], None]) -> DeviceRequest | None:
    if "" in row.cells:
        bad("row", f"more cells than the header has columns (extra: {row.cells['']!r}); a doors list with commas "
            "must be in quotes, e.g. pi-0010,venue-a,\"front,back\"")
        return None
    device, venue = row.cells.get("device", ""), row.cells.get("venue", "")
    if not device:
        bad("device", "empty; give the device id, e.g. pi-0010")
    elif device in first_line:
        bad("device", f"{device!r} is also on line {first_line[device]}; each device once (change one id)")
    else:
        first_line[device] = row.line
        _check(bad, "device", _check_new, device, template, inventory, users, ours)
    if not venue:
        bad("venue", "empty; give the venue id from the inventory, e.g. venue-taohua-shuwu")
    else:
        _check(bad, "venue", check_venue, venue, inventory)
    doors = _check(bad, "doors", parse_doors, row.cells.get("doors") or DEFAULT_DOORS)
    if doors is None:
        return None
    cameras = _check(bad, "cameras", parse_cameras, row.cells.get("cameras", ""), [d for d, _ in doors])
    if cameras is None:
        return None
    return replace(template, device=device, venue=venue, doors=doors, cameras=cameras)


def _check(bad: Callable[[str, str], None], column: str, check: Callable[..., T], *args: Any) -> T | None:
    """One of `provision device`'s checks: its result, or None with its message (minus the option) under `column`."""
    try:
        result = check(*args)
    except ProvisionError as exc:
        bad(column, re.sub(r"^--[a-z-]+: ", "", str(exc)))
        return None
    return True if result is None else result  # a check that returns nothing passed


def _check_new(device: str, template: DeviceRequest, inventory: InventoryFile, users: dict[str, str],
               ours: set[str]) -> None:
    """The id is free: not in the inventory, the password file, OUT/ or the firmware folder (unless ours)."""
    check_device_id(device, template.reserved)
    if device in ours:
        return
    check_in_inventory(device, inventory)
    if device in users:
        raise ProvisionError(f"device {device!r} already has an account in {template.passwd}; choose another id, "
                             f"or run `venuewatch provision revoke {device}` first to replace it")
    if (template.out / device).exists():
        raise ProvisionError(f"the bundle {template.out / device} exists already (it may hold an older password); "
                             "move it away")
    if template.firmware_dir and (template.firmware_dir / f"{device}.yaml").exists():
        raise ProvisionError(f"{template.firmware_dir / (device + '.yaml')} exists already (--firmware-dir); "
                             "move it away")


def provision_fleet(request: FleetRequest, progress: bool = True) -> str:
    with inventory_lock(request.template.inventory):
        return _provision_fleet(request, progress)


def _provision_fleet(request: FleetRequest, progress: bool = True) -> str:
    """Every device of the CSV, or none: bundles, password lines (one write) and inventory entries (one write)."""
    template = request.template
    inventory = InventoryFile(template.inventory)
    check_passwd_folder(template.passwd)
    ca_pem = check_ca_file(template.ca_file) if template.ca_file else None
    # The broker URL is the same for every row: one message for it, not one per row.
    device_config(replace(template, device="fleet-check", doors=[("front", 17)]), PASSWORD_FILE, None)
    rows = read_rows(request.csv)
    users = passwd_users(template.passwd)
    ours, leftover_folders = find_leftovers(template.out, users)
    plans, problems, bad_rows = check_rows(request.csv, rows, template, inventory, users, ours)
    if problems:
        raise FleetError(request.csv, problems, bad_rows, len(rows))
    notes = run_notes(template, inventory)
    with Progress("provision fleet", len(plans), unit="devices", enabled=progress) as bar:
        staging = _new_staging(template.out)
        shared_written = False
        try:
            files = _stage_bundles(staging, plans, inventory, ca_pem, bar)
            for plan in plans:
                if plan.leftover:
                    inventory.remove_device(plan.request.device)  # from the interrupted run; added again below
                inventory.add_device(plan.request.venue, plan.request.device, [d for d, _ in plan.request.doors],
                                     [(c, covers) for c, _, covers in plan.request.cameras])
            text = inventory.checked_text()  # a refusal here still changes nothing
            replaced = set_passwords(template.passwd, {device: password for device, (password, _, _) in files.items()})
            shared_written = True
            backup = inventory.save(text)
            for plan in plans:
                bundle = template.out / plan.request.device
                if plan.leftover and bundle.exists():
                    shutil.rmtree(bundle)  # the interrupted run's bundle: its password is replaced now
                os.rename(staging / plan.request.device, bundle)
        except (OSError, ProvisionError) as exc:
            raise _failed(exc, shared_written) from None
        finally:
            # Once the password file is written the staging folder is what lets a rerun recognise its own devices.
            if not shared_written:
                shutil.rmtree(staging, ignore_errors=True)
    firmware = _firmware_files(plans, files, ours) if template.firmware_dir else []
    shutil.rmtree(staging, ignore_errors=True)  # only now: until here a rerun must recognise this run's devices
    kept = _remove_leftovers(leftover_folders, {p.request.device for p in plans})
    return _summary(request, plans, replaced, backup, bool(ca_pem), firmware, kept, notes)


def _stage_bundles(staging: Path, plans: list[_Plan], inventory: InventoryFile, ca_pem: bytes | None,
                   bar: Progress) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Every bundle in the staging folder: device -> (password, device file content, its header comment)."""
    # The list of devices comes first: a rerun after a crash reads it to recognise this run's leftovers.
    write_new_file(staging / MANIFEST, "".join(f"{p.request.device}\n" for p in plans).encode(), 0o600)
    files = {}
    for plan in plans:
        device = plan.request.device
        password = secrets.token_urlsafe(24)
        (staging / device).mkdir(mode=0o700)
        data = device_config(plan.request, PASSWORD_FILE, CA_FILE if ca_pem else None)
        venue = inventory.model.venues[plan.request.venue]
        header = write_bundle(staging / device, plan.request, data, password, ca_pem, venue, "provision fleet")
        files[device] = (password, data, header)
        bar.advance()
    return files


def _failed(exc: OSError | ProvisionError, shared_written: bool) -> ProvisionError:
    """One line for a failure while writing, saying what a rerun does."""
    reason = exc if isinstance(exc, ProvisionError) or not exc.filename else f"{exc.filename}: {exc.strerror}"
    if shared_written:
        return ProvisionError(f"{reason}; the password file is written already: fix this and run the same command "
                              "again, it redoes the devices of this run")
    return ProvisionError(f"{reason}; nothing shared was changed")


def _new_staging(out: Path) -> Path:
    """A private (0700) hidden folder in OUT, so the bundles are renamed into place within one file system."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    except OSError as exc:
        raise ProvisionError(f"--out: cannot write into {out} ({exc.strerror})") from None


def _firmware_files(plans: list[_Plan], files: dict[str, tuple[str, dict[str, Any], str]], ours: set[str]) -> list[str]:
    lines = []
    for plan in plans:
        _, data, header = files[plan.request.device]
        path = plan.request.firmware_dir / f"{plan.request.device}.yaml"
        if plan.request.device in ours and path.exists():
            path.unlink()  # written by the interrupted run, after its bundle; same content but the date
        try:
            write_firmware_file(plan.request, data, header)
        except ProvisionError as exc:  # the device is provisioned all the same: say so, not exit 2
            lines.append(f"  firmware   not written: {exc}")
    return lines


def _remove_leftovers(folders: list[tuple[Path, list[str]]], done: set[str]) -> list[str]:
    """Remove an interrupted run's staging folders once this run redid all of their devices."""
    kept = []
    for folder, listed in folders:
        missing = [d for d in listed if d not in done]
        if missing:
            kept.append(f"note: {folder} is left from an interrupted run; its devices {', '.join(missing[:5])}"
                        f"{', …' if len(missing) > 5 else ''} are not in this file: run that file again, or revoke "
                        "them and delete the folder")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return kept


def _summary(request: FleetRequest, plans: list[_Plan], replaced: set[str], backup: Path, with_ca: bool,
             firmware: list[str], kept: list[str], notes: list[str]) -> str:
    template = request.template
    venues = {p.request.venue for p in plans}
    redone = sum(p.leftover for p in plans)
    lines = [
        f"provisioned {len(plans)} devices from {request.csv}"
        + (f" ({redone} redone after an interrupted run)" if redone else "") + ":",
        f"  bundles    {template.out}/ID/ for each: ID.yaml, {PASSWORD_FILE} (0600){', ' + CA_FILE if with_ca else ''}"
        ", agent.env -> the Pi's /etc/venuewatch/ (docs/provisioning.md)",
        f"  passwd     {template.passwd}: added {len(plans) - len(replaced)} users"
        + (f", replaced {len(replaced)}" if replaced else "") + " (one write)",
        f"  inventory  {template.inventory}: added {len(plans)} devices to {len(venues)} venues (one write); "
        f"the previous file is {backup.name}",
        "  acl        " + acl_note(template.acl, template.root),
    ]
    if template.firmware_dir:
        lines.append(f"  firmware   {template.firmware_dir}/ID.yaml for each (no password in them)")
    lines.extend(firmware)
    for plan in plans:
        r = plan.request
        cameras = f"  cameras {', '.join(c for c, _, _ in r.cameras)}" if r.cameras else ""
        lines.append(f"  {r.device:<12} {r.venue}  doors {', '.join(f'{d}:{p}' for d, p in r.doors)}{cameras}")
    return "\n".join([*lines, *kept, *notes, *reload_hint()])
