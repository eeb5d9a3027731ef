"""`provision device` and `provision revoke`: a device's MQTT account, inventory entry and installer bundle."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from protocol.topics import DEFAULT_ROOT, DEVICE_ID_PATTERN
from server.provision.errors import ProvisionError
from server.provision.files import inventory_lock, write_new_file
from server.provision.inventory_edit import InventoryFile
from server.provision.passwd import (
    DEFAULT_PASSWD,
    acl_covers_devices,
    acl_users,
    passwd_users,
    remove_password,
    set_password,
)

SERVER_USER = "venuewatch-server"
# Bundle file names; the device file is named after the id because the agent's systemd unit starts
# `--config /etc/venuewatch/${VENUEWATCH_DEVICE}.yaml`.
PASSWORD_FILE = "mqtt-password"
CA_FILE = "ca.crt"
# BCM pins given to doors in order when --doors names no pin: 17 and 27 as in firmware_config's example,
# then free pins that are not I2C (2, 3), 1-Wire (4), SPI (7-11) or the serial console (14, 15).
DEFAULT_PINS = (17, 27, 22, 23, 24, 25, 5, 6, 12, 13, 16, 19, 20, 21, 26)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_DOOR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass
class DeviceRequest:
    """`provision device` with every default resolved (from the server config where one is at hand)."""

    device: str
    venue: str
    doors: list[tuple[str, int]]
    inventory: Path
    passwd: Path
    acl: Path
    broker_url: str
    ca_file: Path | None
    out: Path
    firmware_dir: Path | None
    root: str
    reserved: set[str]
    # (camera id, source, doors it sees): written by `provision fleet`'s cameras column, not by `provision device`
    cameras: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_config: str) -> DeviceRequest:
        return cls(device=args.id, venue=args.venue, doors=parse_doors(args.doors),
                   **shared_settings(args, default_config))


def shared_settings(args: argparse.Namespace, default_config: str) -> dict[str, Any]:
    """The DeviceRequest fields every device of a run shares (`provision device` and `provision fleet`)."""
    config = _server_config(args.config, default_config)
    inventory = _inventory_path(args, config, default_config)
    broker_url = args.broker_url or (config.broker.url if config else None)
    if not broker_url:
        raise ProvisionError("--broker-url: give the address the Pis connect to, e.g. "
                             "mqtts://mqtt.venuewatch.lan:8883 (or --config with the server's broker.url)")
    reserved = {SERVER_USER} | acl_users(args.acl)
    if config and config.broker.username:
        reserved.add(config.broker.username)
    return {"inventory": inventory, "passwd": args.passwd, "acl": args.acl, "broker_url": broker_url,
            "ca_file": args.ca_file or (config.broker.ca_file if config else None), "out": args.out,
            "firmware_dir": args.firmware_dir, "root": config.broker.root if config else DEFAULT_ROOT,
            "reserved": reserved}


def _server_config(explicit: Path | None, default: str) -> Any:
    """The server config for defaults: the one given, else the default one if it exists, else None."""
    from server.config import load_server_config

    if explicit is None and not Path(default).exists():
        return None
    return load_server_config(explicit or default)


def _inventory_path(args: argparse.Namespace, config: Any, default_config: str) -> Path:
    """--inventory, else the one the server config names."""
    inventory = args.inventory or (config.inventory if config else None)
    if inventory is None:
        raise ProvisionError(f"--inventory: no inventory given and no server config at {default_config}; "
                             "give --inventory FILE or --config SERVER_YAML")
    return inventory


def _inventory_and_passwd(args: argparse.Namespace, default_config: str) -> tuple[Path, Path]:
    return _inventory_path(args, _server_config(args.config, default_config), default_config), args.passwd


def check_device_id(device: str, reserved: set[str]) -> None:
    """A device id is its MQTT username and a topic level: the repo's pattern, and never the server's account."""
    if not _DEVICE_ID.match(device):
        hint = f" (try {device.lower()!r})" if _DEVICE_ID.match(device.lower()) else ""
        raise ProvisionError(f"device id {device!r} is not valid: use lowercase letters, digits, '-' and '_', "
                             f"starting with a letter or digit, at most 63 characters{hint}")
    if device in reserved:
        raise ProvisionError(f"device id {device!r} is the server's MQTT account (the ACL lets it read every "
                             "device); choose another id")


def parse_doors(text: str) -> list[tuple[str, int]]:
    """`front,back` or `front:17,back:27`: door ids with BCM pins; unnamed pins come from DEFAULT_PINS in order."""
    named: list[tuple[str, int | None]] = []
    for part in (p.strip() for p in text.split(",")):
        door, _, pin = part.partition(":")
        if not _DOOR_ID.match(door):
            raise ProvisionError(f"--doors: {door!r} is not a door id; use lowercase letters, digits, '-' and '_' "
                                 "(e.g. --doors front,back or --doors front:17,back:27)")
        if pin and not (pin.isdigit() and 2 <= int(pin) <= 27):
            raise ProvisionError(f"--doors: pin {pin!r} of {door!r} is not a Raspberry Pi GPIO (BCM 2-27)")
        named.append((door, int(pin) if pin else None))
    ids = [door for door, _ in named]
    pins = [pin for _, pin in named if pin is not None]
    for seen, what in ((ids, "door"), (pins, "pin")):
        twice = {x for x in seen if seen.count(x) > 1}
        if twice:
            raise ProvisionError(f"--doors: {what} {sorted(twice)[0]} is given twice; each door needs its own")
    free = iter(p for p in DEFAULT_PINS if p not in pins)
    return [(door, pin if pin is not None else next(free)) for door, pin in named]


def device_config(request: DeviceRequest, password_file: str, ca_file: str | None) -> dict[str, Any]:
    """The device file's content; validated with the agent's own model before anything is written."""
    from edge.config import DeviceConfig

    broker: dict[str, Any] = {"url": request.broker_url, "username": request.device, "password_file": password_file}
    if ca_file:
        broker["ca_file"] = ca_file
    if request.root != DEFAULT_ROOT:
        broker["root"] = request.root
    data: dict[str, Any] = {"device": request.device, "broker": broker, "data_dir": "/var/lib/venuewatch",
                            "doors": [{"id": door, "pin": pin} for door, pin in request.doors]}
    if request.cameras:
        data["cameras"] = [{"id": camera, "source": source} for camera, source, _ in request.cameras]
    try:
        DeviceConfig.model_validate(data)
    except ValueError as exc:
        raise ProvisionError(f"the device file would not be valid ({_first_error(exc)}); check --broker-url "
                             f"and --doors{' and the cameras' if request.cameras else ''}") from None
    return data


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    err = errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])  # empty for a check of the whole file (ids used twice)
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _device_yaml(data: dict[str, Any], header: str) -> bytes:
    return (header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False)).encode("utf-8")


def check_ca_file(path: Path) -> bytes:
    from cryptography import x509

    try:
        pem = path.read_bytes()
        x509.load_pem_x509_certificates(pem)
    except OSError as exc:
        raise ProvisionError(f"--ca-file: cannot read {path} ({exc.strerror}); give the county ca.crt") from None
    except ValueError:
        raise ProvisionError(f"--ca-file: {path} is not a PEM certificate; give the county ca.crt "
                             "(from venuewatch provision ca), not a key") from None
    return pem


def check_in_inventory(device: str, inventory: InventoryFile) -> None:
    """A device id is used once in the whole inventory."""
    where = inventory.model.device_venue.get(device)
    if where is not None:
        raise ProvisionError(f"{inventory.path}: device {device!r} is already at {where}; choose another "
                             f"id, or run `venuewatch provision revoke {device}` first to replace it")


def check_venue(venue: str, inventory: InventoryFile) -> None:
    if inventory.venue(venue) is None:
        known = ", ".join(sorted(inventory.model.venues)[:8]) or "none"
        raise ProvisionError(f"--venue: {venue!r} is not a venue in {inventory.path} (venues: {known}"
                             f"{', …' if len(inventory.model.venues) > 8 else ''}); add the venue first")


def check_passwd_folder(passwd: Path) -> None:
    if not passwd.parent.is_dir():
        raise ProvisionError(f"--passwd: the folder of {passwd} does not exist; give the broker's "
                             f"password_file (default {DEFAULT_PASSWD})")


def registered_without_account(request: DeviceRequest, inventory: InventoryFile) -> bool:
    """Is the device listed at this venue with these doors already, but without an MQTT account? That is a
    device registered from the console (管理 → 登记设备, docs/admin.md): only its password and bundle are
    made, the inventory is left as it is. Listed anywhere else, or with an account, it is refused."""
    where = inventory.model.device_venue.get(request.device)
    if where is None or where != request.venue:
        check_in_inventory(request.device, inventory)
        return False
    if request.device in passwd_users(request.passwd):
        raise ProvisionError(f"{request.passwd}: device {request.device!r} has an MQTT account already; run "
                             f"`venuewatch provision revoke {request.device}` first to give it a new password")
    listed = list(inventory.model.device_doors[request.device])
    if [door for door, _ in request.doors] != listed:
        raise ProvisionError(f"--doors: {request.device} is registered at {where} with doors "
                             f"{','.join(listed) or '(none)'}; give the same doors, in that order (pins may be "
                             f"added, e.g. {','.join(f'{d}:{p}' for d, p in zip(listed, DEFAULT_PINS, strict=False))})")
    return True


def _check_request(request: DeviceRequest, inventory: InventoryFile) -> tuple[list[str], bool]:
    """Every refusal before anything is written; returns warnings to print, and whether the device is
    registered already (registered_without_account)."""
    check_device_id(request.device, request.reserved)
    check_passwd_folder(request.passwd)
    registered = registered_without_account(request, inventory)
    check_venue(request.venue, inventory)
    bundle = request.out / request.device
    if bundle.exists():
        raise ProvisionError(f"--out: {bundle} exists already (it may hold an older password); move it away")
    if request.firmware_dir and (request.firmware_dir / f"{request.device}.yaml").exists():
        raise ProvisionError(f"--firmware-dir: {request.firmware_dir / (request.device + '.yaml')} exists already; "
                             "move it away")
    return run_notes(request, inventory), registered


def run_notes(request: DeviceRequest, inventory: InventoryFile) -> list[str]:
    """Warnings about the run's settings (not refusals): printed after the summary."""
    warnings = []
    if inventory.reformatted:
        warnings.append(f"note: ruamel.yaml writes some untouched lines of {request.inventory} differently (same "
                        "content); compare it with the .bak")
    parts = urlsplit(request.broker_url)
    if parts.scheme != "mqtts":
        warnings.append(f"warning: {request.broker_url} is not TLS (mqtts://): the password would cross the "
                        "network in clear")
    elif request.ca_file is None:
        warnings.append("warning: no --ca-file: the Pi will trust only the system's public CAs, not the county CA")
    if parts.hostname in ("localhost", "127.0.0.1", "::1"):
        warnings.append(f"warning: {request.broker_url} is this machine's own address; a Pi needs the broker's "
                        "name or address as it sees it (--broker-url)")
    return warnings


def provision_device(request: DeviceRequest) -> str:
    with inventory_lock(request.inventory):
        return _provision_device(request)


def _provision_device(request: DeviceRequest) -> str:
    """Password line, inventory entry and installer bundle for one device; its password is never printed.

    Order: everything is checked first; the bundle is made in a hidden folder; then the password file,
    then the inventory; the bundle gets its name last. A failure part-way leaves at most a password line
    for a device not in the inventory, which a second run replaces.
    """
    inventory = InventoryFile(request.inventory)
    notes, registered = _check_request(request, inventory)
    ca_pem = check_ca_file(request.ca_file) if request.ca_file else None
    data = device_config(request, PASSWORD_FILE, CA_FILE if ca_pem else None)
    password = secrets.token_urlsafe(24)
    bundle = request.out / request.device
    with _staging(bundle) as staging:
        venue = inventory.model.venues[request.venue]
        header = write_bundle(staging, request, data, password, ca_pem, venue, "provision device")
        if not registered:
            inventory.add_device(request.venue, request.device, [door for door, _ in request.doors])
        text = inventory.checked_text()
        replaced = set_password(request.passwd, request.device, password)
        backup = None if registered else inventory.save(text)
        os.rename(staging, bundle)
    doors = ", ".join(f"{d} on BCM {p}" for d, p in request.doors)
    lines = [
        f"provisioned {request.device} at {venue.name} ({venue.id}):",
        f"  bundle     {bundle}/: {request.device}.yaml, {PASSWORD_FILE} (0600)"
        f"{', ' + CA_FILE if ca_pem else ''}, agent.env -> the Pi's /etc/venuewatch/ (docs/provisioning.md)",
        f"  passwd     {request.passwd}: {'replaced' if replaced else 'added'} user {request.device}",
        f"  inventory  {request.inventory}: " + (
            f"{request.device} was registered there already (doors {doors}); unchanged" if backup is None else
            f"added {request.device} (doors {doors}); the previous file is {backup.name}"),
        "  acl        " + acl_note(request.acl, request.root),
    ]
    if request.firmware_dir:
        try:
            lines.append(f"  firmware   {write_firmware_file(request, data, header)} (no password in it)")
        except ProvisionError as exc:  # the device is provisioned all the same: say so, not exit 2
            lines.append(f"  firmware   not written: {exc}")
    return "\n".join([*lines, *notes, *reload_hint()])


def write_bundle(folder: Path, request: DeviceRequest, data: dict[str, Any], password: str, ca_pem: bytes | None,
                 venue: Any, command: str) -> str:
    """The installer's files in `folder` (which exists, mode 0700); returns the device file's header comment."""
    header = (f"# {request.device} at {venue.name} ({venue.id}), {venue.village_name}, {venue.township_name}.\n"
              f"# Made by `venuewatch {command}` on {dt.date.today()}. On the Pi: "
              f"/etc/venuewatch/{request.device}.yaml,\n# with {PASSWORD_FILE} and {CA_FILE} beside it "
              "(docs/provisioning.md).\n")
    write_new_file(folder / f"{request.device}.yaml", _device_yaml(data, header), 0o600)
    write_new_file(folder / PASSWORD_FILE, (password + "\n").encode(), 0o600)
    if ca_pem:
        write_new_file(folder / CA_FILE, ca_pem, 0o644)
    write_new_file(folder / "agent.env", f"VENUEWATCH_DEVICE={request.device}\n".encode(), 0o644)
    return header


@contextlib.contextmanager
def _staging(bundle: Path) -> Iterator[Path]:
    """A private (0700) hidden folder beside the bundle, removed unless the body renamed it into place."""
    try:
        bundle.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", dir=bundle.parent))
    except OSError as exc:
        raise ProvisionError(f"--out: cannot write into {bundle.parent} ({exc.strerror})") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_firmware_file(request: DeviceRequest, data: dict[str, Any], header: str) -> Path:
    """The same device file with absolute Pi paths, for firmware_config/devices/ (version control)."""
    broker = dict(data["broker"], password_file=f"/etc/venuewatch/{PASSWORD_FILE}")
    if "ca_file" in broker:
        broker["ca_file"] = f"/etc/venuewatch/{CA_FILE}"
    path = request.firmware_dir / f"{request.device}.yaml"
    try:
        request.firmware_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisionError(f"--firmware-dir: cannot create {request.firmware_dir} ({exc.strerror})") from None
    write_new_file(path, _device_yaml(dict(data, broker=broker), header), 0o644)
    return path


def acl_note(acl: Path, root: str) -> str:
    covered = acl_covers_devices(acl, root)
    if covered is None:
        return f"{acl}: not readable, not checked; it needs `pattern write {root}/%u/#` (deploy/mosquitto/acl)"
    if covered:
        return f"{acl}: `pattern write {root}/%u/#` covers the device; no line of its own needed"
    return (f"{acl}: WARNING: no `pattern write {root}/%u/#` line, so the device may not publish; "
            "install deploy/mosquitto/acl as this file")


def reload_hint() -> list[str]:
    return ["next: sudo systemctl reload mosquitto        (mosquitto re-reads its password and ACL files on SIGHUP)",
            "      the server takes the new inventory by itself within seconds (event=inventory_reloaded in its log)"]


# --- revoke --------------------------------------------------------------------------------------------------


def provision_revoke(device: str, inventory_path: Path, passwd: Path) -> str:
    with inventory_lock(inventory_path):
        return _provision_revoke(device, inventory_path, passwd)


def _provision_revoke(device: str, inventory_path: Path, passwd: Path) -> str:
    """Remove the device's password line and inventory entry; its events and alerts stay in the database."""
    check_device_id(device, {SERVER_USER})
    inventory = InventoryFile(inventory_path)
    in_passwd = device in passwd_users(passwd)
    if device not in inventory.model.device_venue and not in_passwd:
        raise ProvisionError(f"device {device!r} is neither in {inventory_path} nor in {passwd}; nothing to revoke "
                             "(check the id, --inventory and --passwd)")
    lines = [f"revoked {device}:"]
    venue = inventory.remove_device(device)
    text = inventory.checked_text() if venue is not None else ""
    if in_passwd:
        remove_password(passwd, device)
        lines.append(f"  passwd     {passwd}: removed user {device}; it can no longer log in once mosquitto reloads")
    else:
        lines.append(f"  passwd     {passwd}: had no line for {device}")
    if venue is not None:
        backup = inventory.save(text)
        lines.append(f"  inventory  {inventory_path}: removed {device} from {venue}; the previous file is "
                     f"{backup.name}")
    else:
        lines.append(f"  inventory  {inventory_path}: {device} was not listed")
    lines.append("  its stored events and alerts stay in the database")
    return "\n".join([*lines, *reload_hint()])
