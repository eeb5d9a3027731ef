"""`venuewatch provision`: the county CA, one MQTT identity per device, and revoking it.

Three commands replace the manual openssl / mosquitto_passwd steps of docs/operations.md
(the steps are in docs/provisioning.md):

- `ca`: a private CA and the broker's certificate. The CA key is written once and never overwritten,
  because a new CA locks out every Pi that trusts the old one.
- `device`: a random MQTT password in mosquitto's own password-file format, the device in the
  inventory, and a bundle folder for the installer (device file, password, CA certificate).
- `revoke`: the device's password line and inventory entry go; its history stays in the database.

Secrets are created with their final mode (0600) by os.open, never chmod-ed afterwards, and shared
files (password file, inventory) are replaced atomically, keeping their owner and mode, because
mosquitto and the server read them as other users and must never see half a file.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import grp
import hashlib
import hmac
import io
import ipaddress
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from protocol.topics import DEFAULT_ROOT, DEVICE_ID_PATTERN

SERVER_USER = "venuewatch-server"
DEFAULT_PASSWD = Path("/etc/mosquitto/venuewatch.passwd")
DEFAULT_ACL = Path("/etc/mosquitto/venuewatch.acl")
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
SERVER_CERT_DAYS = 825
CA_MIN_DAYS = 3650
# mosquitto 2.0's mosquitto_passwd: `$7$` = PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, 64-byte hash,
# both base64 (standard alphabet, padded). The broker refuses other salt lengths. The iteration count is
# low, but each password is 192 random bits, so it only has to make a stolen file useless, not slow guessing.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
# Bundle file names; the device file is named after the id because the agent's systemd unit starts
# `--config /etc/venuewatch/${VENUEWATCH_DEVICE}.yaml`.
PASSWORD_FILE = "mqtt_password"
CA_FILE = "ca.crt"
# BCM pins given to doors in order when --doors names no pin: 17 and 27 as in firmware_config's example,
# then free pins that are not I2C (2, 3), 1-Wire (4), SPI (7-11) or the serial console (14, 15).
DEFAULT_PINS = (17, 27, 22, 23, 24, 25, 5, 6, 12, 13, 16, 19, 20, 21, 26)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_DOOR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DNS_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.I)


class ProvisionError(ValueError):
    """Bad input or a file that cannot be used: one line naming the file or option and the fix."""


def run(args: argparse.Namespace, default_config: str) -> int:
    """Entry point of `venuewatch provision …`; a ProvisionError is one line on stderr and exit 2."""
    try:
        if args.provision_command == "ca":
            report = provision_ca(args.out, args.host or list(DEFAULT_HOSTS), args.days)
        elif args.provision_command == "device":
            report = provision_device(DeviceRequest.from_args(args, default_config))
        else:
            report = provision_revoke(args.id, *_inventory_and_passwd(args, default_config))
    except ProvisionError as exc:
        print(f"venuewatch provision: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


# --- files --------------------------------------------------------------------------------------------------


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the first byte on (O_EXCL: never follow or replace an existing file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ProvisionError(f"{path} exists already; move it away first (nothing was overwritten)") from None
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot create it ({exc.strerror}); check the folder and your rights") from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits a reader needs; nothing is written yet
        _write_all(fd, data)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace `path` atomically: readers (mosquitto on SIGHUP, the server at start) see old or new, never half."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot write beside it ({exc.strerror}); run as the file's owner "
                             "(sudo) or give another path") from None
    try:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)  # mosquitto reads its password file through the file's group
        os.fchmod(fd, mode)
        _write_all(fd, data)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot replace it ({exc.strerror}); run as the file's owner (sudo)") from None
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: after a power cut the file is the old one or the new one."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read the {what} ({exc.strerror}); check the path") from None


# --- the county CA and the broker certificate ------------------------------------------------------------------


def parse_host(text: str) -> Any:
    """A --host as a subjectAltName entry: an IP address as IP (TLS clients match addresses only there)."""
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _DNS_NAME.match(text) or len(text) > 253:
        raise ProvisionError(f"--host: {text!r} is not a host name or IP address; write the name the Pis put in "
                             "broker.url (e.g. mqtt.venuewatch.lan) or an address (e.g. 10.20.0.5)")
    return x509.DNSName(text.lower())


def make_ca(days: int, now: dt.datetime) -> tuple[Any, Any]:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "venuewatch"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "venuewatch county CA")])
    cert = (
        _validity(x509.CertificateBuilder(), now, days)
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key: Any, ca_cert: Any, hosts: list[str], days: int, now: dt.datetime) -> tuple[Any, Any]:
    """The broker's certificate: every --host as a SAN (clients check only SANs), for TLS servers only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = [parse_host(h) for h in hosts]
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _validity(x509.CertificateBuilder(), now, days)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _validity(builder: Any, now: dt.datetime, days: int) -> Any:
    """Valid from a day ago: a Pi has no clock battery and may run a little behind until NTP syncs."""
    from cryptography import x509

    return (builder.serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days)))


def _key_usage(cert_sign: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def provision_ca(out: Path, hosts: list[str], days: int, now: dt.datetime | None = None) -> str:
    """Write ca.crt, ca.key, server.crt, server.key into `out`; refuse if any of them is there already.

    Any existing file stops it, not only ca.key: the admin is told to move ca.key offline, and a ca.crt left
    behind would otherwise be replaced by one that no Pi trusts.
    """
    if not 1 <= days <= 36500:
        raise ProvisionError(f"--days: {days} is out of range; give the broker certificate's validity in days "
                             f"(1-36500, default {SERVER_CERT_DAYS})")
    for host in hosts:
        parse_host(host)
    files = {name: out / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    for path in files.values():
        if path.exists():
            raise ProvisionError(f"{path} exists already: a new CA would lock out every Pi that trusts the old one; "
                                 "use an empty --out folder, or move the old files away if you really mean to "
                                 "replace the CA (nothing was written)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisionError(f"--out: cannot create {out} ({exc.strerror})") from None
    now = now or dt.datetime.now(dt.UTC)
    ca_key, ca_cert = make_ca(max(days, CA_MIN_DAYS), now)
    key, cert = make_server_cert(ca_key, ca_cert, hosts, days, now)
    write_new_file(files["ca.key"], _pem_key(ca_key), 0o600)
    write_new_file(files["server.key"], _pem_key(key), 0o600)
    write_new_file(files["ca.crt"], _pem_cert(ca_cert), 0o644)
    write_new_file(files["server.crt"], _pem_cert(cert), 0o644)
    until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    return "\n".join([
        f"wrote a new county CA and the broker certificate to {out}/:",
        f"  ca.crt      the CA certificate (public, until {ca_cert.not_valid_after_utc:%Y-%m-%d})",
        "              -> /etc/mosquitto/certs/ca.crt and /etc/venuewatch/ca.crt on the server (0644);",
        "                 every Pi gets it in its bundle (venuewatch provision device --ca-file ca.crt)",
        "  ca.key      the CA private key (0600) -> OFFLINE: an encrypted USB stick in a safe, never on the",
        "              server or a Pi; needed again only to sign a new broker certificate",
        f"  server.crt  the broker certificate for {', '.join(hosts)}, until {until}",
        "              -> /etc/mosquitto/certs/server.crt (0644)",
        "  server.key  the broker private key (0600) -> /etc/mosquitto/certs/server.key (root:mosquitto 0640)",
        "then: sudo systemctl restart mosquitto   (docs/provisioning.md)",
    ])


# --- mosquitto's password file ---------------------------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """mosquitto 2.x `$7$` entry, so the broker accepts our file without mosquitto_passwd on this machine."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(encoded: str, password: str) -> bool:
    """Check a password against a `$7$` (PBKDF2-SHA512) or older `$6$` (salted SHA512) entry, as mosquitto does."""
    parts = encoded.strip().split("$")
    try:
        if len(parts) == 5 and parts[:2] == ["", "7"]:
            salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
            actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]), len(expected))
        elif len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, expected = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
            actual = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _passwd_user(line: str) -> str | None:
    """The user of a password-file line; mosquitto skips comments and blank lines."""
    text = line.strip()
    return None if not text or text.startswith("#") else text.split(":", 1)[0]


def passwd_users(path: Path) -> dict[str, str]:
    """user -> encoded password of a mosquitto password file (empty if the file does not exist yet)."""
    if not path.exists():
        return {}
    users = {}
    for line in _read_text(path, "mosquitto password file").splitlines():
        user = _passwd_user(line)
        if user is not None:
            users[user] = line.strip().split(":", 1)[1] if ":" in line else ""
    return users


def set_password(path: Path, user: str, password: str) -> bool:
    """Add or replace `user`'s line; returns True if it replaced one. Other lines are kept as they are."""
    lines, replaced = _lines_without(path, user)
    lines.append(f"{user}:{hash_password(password)}")
    _write_passwd(path, lines)
    return replaced


def remove_password(path: Path, user: str) -> bool:
    """Remove `user`'s line; returns False (and writes nothing) if there was none."""
    lines, removed = _lines_without(path, user)
    if removed:
        _write_passwd(path, lines)
    return removed


def _lines_without(path: Path, user: str) -> tuple[list[str], bool]:
    if not path.exists():
        if not path.parent.is_dir():
            raise ProvisionError(f"--passwd: the folder of {path} does not exist; give the broker's password_file "
                                 f"(default {DEFAULT_PASSWD})")
        return [], False
    lines = _read_text(path, "mosquitto password file").splitlines()
    kept = [line for line in lines if _passwd_user(line) != user]
    return kept, len(kept) != len(lines)


def _write_passwd(path: Path, lines: list[str]) -> None:
    """Keep the file's owner and group (mosquitto reads it via group `mosquitto`) and at most mode 0640."""
    if path.exists():
        st = path.stat()
        mode, owner = (st.st_mode & 0o640) or 0o600, (st.st_uid, st.st_gid)
    else:
        mode, owner = 0o600, None
        with contextlib.suppress(KeyError):
            if os.geteuid() == 0:
                mode, owner = 0o640, (0, grp.getgrnam("mosquitto").gr_gid)
    replace_file(path, "".join(f"{line}\n" for line in lines).encode(), mode, owner)


def acl_covers_devices(path: Path, root: str) -> bool | None:
    """Whether the ACL has `pattern write <root>/%u/#`, which lets every device publish under its own id.

    None if the file cannot be read: a device needs no line of its own, so this is only a check.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    wanted = f"{root}/%u/#"
    return any(line.split()[:1] == ["pattern"] and line.split()[1:] in (["write", wanted], ["readwrite", wanted])
               for line in text.splitlines())


def acl_users(path: Path) -> set[str]:
    """Accounts with their own `user NAME` section in the ACL (the server's): never a device id."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split()[1] for line in text.splitlines() if len(line.split()) == 2 and line.split()[0] == "user"}


# --- the inventory, edited with comments and order kept ---------------------------------------------------------


class InventoryFile:
    """An inventory loaded for a round trip: ruamel keeps comments, key order, quotes and indentation."""

    def __init__(self, path: Path) -> None:
        from ruamel.yaml import YAML
        from ruamel.yaml.util import load_yaml_guess_indent

        from server.inventory import Inventory

        self.path = path
        text = _read_text(path, "inventory")
        self.model = Inventory.from_text(text, str(path))  # a ConfigError names the file, the field and the fix
        _, indent, dash_offset = load_yaml_guess_indent(text)
        self.yaml = YAML()
        self.yaml.preserve_quotes = True
        self.yaml.width = 4096  # never re-wrap a long line
        self.yaml.indent(mapping=dash_offset or 2, sequence=indent or 2, offset=dash_offset or 0)
        self.data = self.yaml.load(text)
        self.original = text
        # ruamel writes a few rare layouts (a one-key mapping inside [...]) differently but equivalently.
        self.reformatted = self.render() != text

    def venue(self, venue_id: str) -> Any:
        """The venue's mapping in the YAML tree, or None."""
        for township in self.data.get("townships") or []:
            for village in township.get("villages") or []:
                for venue in village.get("venues") or []:
                    if venue.get("id") == venue_id:
                        return venue
        return None

    def add_device(self, venue_id: str, device: str, doors: list[str]) -> None:
        """Append the device to the venue's `devices`, keeping the comments that follow the list in place."""
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        venue = self.venue(venue_id)
        devices = venue.get("devices")
        if _is_block(devices):
            following = _take_after(devices[-1])
        elif isinstance(devices, CommentedSeq):
            following = _take_slot_rest((venue, "devices", 2))
        else:
            following = _take_after(venue, own_end=False)
            devices = venue["devices"] = CommentedSeq()
        if not venue.fa.flow_style():  # `devices: []` becomes a block list; inside a {…} venue all stays flow
            devices.fa.set_block_style()
        entry = CommentedMap(id=device)
        entry["doors"] = CommentedSeq(doors)
        entry["doors"].fa.set_flow_style()
        devices.append(entry)
        _give_after(_last_slot(devices), following)

    def remove_device(self, device: str) -> str | None:
        """Remove the device's entry; returns its venue id (None if it is not listed)."""
        venue_id = self.model.device_venue.get(device)
        if venue_id is None:
            return None
        venue = self.venue(venue_id)
        devices = venue["devices"]
        index = next(i for i, entry in enumerate(devices) if entry.get("id") == device)
        # Lines after the entry describe what follows it: give them to the entry that now comes before that.
        following = _take_after(devices[index])
        del devices[index]
        if not devices:
            following += _take_end(devices)  # a flow list `[]` prints no comments after itself
            devices.fa.set_flow_style()  # `devices: []`, as an empty venue is written by hand
            _give_after((venue, "devices", 2), following)
        elif index > 0:
            _give_after(_slot_after(devices, index - 1, 0), following)
        return venue_id

    def render(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        return out.getvalue()

    def checked_text(self) -> str:
        """The edited file, validated with the server's own model: a change the server would refuse is not written."""
        from server.inventory import Inventory

        text = self.render()
        Inventory.from_text(text, f"{self.path} (as it would be after the change; nothing was written)")
        return text

    def save(self, text: str) -> Path:
        """Keep the old file as .bak and replace it atomically, with its owner and mode."""
        backup = self.path.with_name(self.path.name + ".bak")
        st = self.path.stat()
        replace_file(backup, self.original.encode("utf-8"), st.st_mode & 0o777, (st.st_uid, st.st_gid))
        replace_file(self.path, text.encode("utf-8"), st.st_mode & 0o777, (st.st_uid, st.st_gid))
        return backup


# ruamel keeps the comment lines that follow a collection on its deepest last entry, so appending would put
# the new entry below comments that describe the next venue or village. These helpers move such lines.
Slot = tuple[Any, Any, int]


def _is_block(value: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    return isinstance(value, CommentedMap | CommentedSeq) and len(value) > 0 and not value.fa.flow_style()


def _last_slot(node: Any) -> Slot | None:
    """Where ruamel stores the comments after `node`: (holder, key, position) on its deepest last entry."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and node:
        return _slot_after(node, list(node)[-1], 2)
    if isinstance(node, CommentedSeq) and node:
        return _slot_after(node, len(node) - 1, 0)
    return None


def _slot_after(holder: Any, key: Any, position: int) -> Slot | None:
    value = holder[key]
    return _last_slot(value) if _is_block(value) else (holder, key, position)


def _take_after(node: Any, own_end: bool = True) -> str:
    """Detach the comment lines printed after `node`'s last line (its end-of-line comment stays).

    ruamel keeps them on the deepest last entry, or as `end` comments of a collection on the way down.
    """
    lines = _take_slot_rest(_last_slot(node))
    chain = [node]
    while _is_block(chain[-1]):
        last = chain[-1]
        child = last[list(last)[-1]] if isinstance(last, dict) else last[-1]
        chain.append(child)
    for collection in reversed(chain if own_end else chain[1:]):
        lines += _take_end(collection)
    return lines


def _take_end(node: Any) -> str:
    """Detach a collection's `end` comments as text with their indentation."""
    tokens = getattr(getattr(node, "ca", None), "end", None)
    if not tokens:
        return ""
    node.ca.end = []
    return "".join(" " * token.column + token.value.lstrip(" ") for token in tokens)


def _take_slot_rest(slot: Slot | None) -> str:
    """Detach the comment lines after a slot's line; its own end-of-line comment stays."""
    if slot is None:
        return ""
    holder, key, position = slot
    entry = holder.ca.items.get(key)
    token = entry[position] if entry and len(entry) > position else None
    if token is None:
        return ""
    own, newline, rest = token.value.partition("\n")
    if not rest:
        return ""
    if own.strip():
        token.value = own + newline
    else:
        entry[position] = None
    return rest


def _give_after(slot: Slot | None, lines: str) -> None:
    """Attach comment lines after a slot's line (after its end-of-line comment, if any)."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    if not lines or slot is None:
        return
    holder, key, position = slot
    entry = holder.ca.items.setdefault(key, [None, None, None, None])
    if entry[position] is None:
        entry[position] = CommentToken("\n" + lines, CommentMark(0))
    else:
        entry[position].value = entry[position].value.rstrip("\n") + "\n" + lines


# --- device --------------------------------------------------------------------------------------------------


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

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_config: str) -> DeviceRequest:
        config = _server_config(args.config, default_config)
        inventory = args.inventory or (config.inventory if config else None)
        if inventory is None:
            raise ProvisionError(f"--inventory: no inventory given and no server config at {default_config}; "
                                 "give --inventory FILE or --config SERVER_YAML")
        broker_url = args.broker_url or (config.broker.url if config else None)
        if not broker_url:
            raise ProvisionError("--broker-url: give the address the Pis connect to, e.g. "
                                 "mqtts://mqtt.venuewatch.lan:8883 (or --config with the server's broker.url)")
        reserved = {SERVER_USER} | acl_users(args.acl)
        if config and config.broker.username:
            reserved.add(config.broker.username)
        return cls(
            device=args.id, venue=args.venue, doors=parse_doors(args.doors), inventory=inventory,
            passwd=args.passwd, acl=args.acl, broker_url=broker_url,
            ca_file=args.ca_file or (config.broker.ca_file if config else None), out=args.out,
            firmware_dir=args.firmware_dir, root=config.broker.root if config else DEFAULT_ROOT, reserved=reserved,
        )


def _server_config(explicit: Path | None, default: str) -> Any:
    """The server config for defaults: the one given, else the default one if it exists, else None."""
    from server.config import load_server_config

    if explicit is None and not Path(default).exists():
        return None
    return load_server_config(explicit or default)


def _inventory_and_passwd(args: argparse.Namespace, default_config: str) -> tuple[Path, Path]:
    config = _server_config(args.config, default_config)
    inventory = args.inventory or (config.inventory if config else None)
    if inventory is None:
        raise ProvisionError(f"--inventory: no inventory given and no server config at {default_config}; "
                             "give --inventory FILE or --config SERVER_YAML")
    return inventory, args.passwd


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
    data = {"device": request.device, "broker": broker, "data_dir": "/var/lib/venuewatch",
            "doors": [{"id": door, "pin": pin} for door, pin in request.doors]}
    try:
        DeviceConfig.model_validate(data)
    except ValueError as exc:
        raise ProvisionError(f"the device file would not be valid ({_first_error(exc)}); check --broker-url "
                             "and --doors") from None
    return data


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    err = errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"


def _device_yaml(data: dict[str, Any], header: str) -> bytes:
    return (header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False)).encode("utf-8")


def _check_ca_file(path: Path) -> bytes:
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


def _check_request(request: DeviceRequest, inventory: InventoryFile) -> list[str]:
    """Every refusal before anything is written; returns warnings to print."""
    check_device_id(request.device, request.reserved)
    where = inventory.model.device_venue.get(request.device)
    if where is not None:
        raise ProvisionError(f"{request.inventory}: device {request.device!r} is already at {where}; choose another "
                             f"id, or run `venuewatch provision revoke {request.device}` first to replace it")
    if inventory.venue(request.venue) is None:
        known = ", ".join(sorted(inventory.model.venues)[:8]) or "none"
        raise ProvisionError(f"--venue: {request.venue!r} is not a venue in {request.inventory} (venues: {known}"
                             f"{', …' if len(inventory.model.venues) > 8 else ''}); add the venue first")
    bundle = request.out / request.device
    if bundle.exists():
        raise ProvisionError(f"--out: {bundle} exists already (it may hold an older password); move it away")
    if request.firmware_dir and (request.firmware_dir / f"{request.device}.yaml").exists():
        raise ProvisionError(f"--firmware-dir: {request.firmware_dir / (request.device + '.yaml')} exists already; "
                             "move it away")
    if not request.passwd.parent.is_dir():
        raise ProvisionError(f"--passwd: the folder of {request.passwd} does not exist; give the broker's "
                             f"password_file (default {DEFAULT_PASSWD})")
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
    """Password line, inventory entry and installer bundle for one device; its password is never printed.

    Order: everything is checked first; the bundle is made in a hidden folder; then the password file,
    then the inventory; the bundle gets its name last. A failure part-way leaves at most a password line
    for a device not in the inventory, which a second run replaces.
    """
    inventory = InventoryFile(request.inventory)
    notes = _check_request(request, inventory)
    ca_pem = _check_ca_file(request.ca_file) if request.ca_file else None
    data = device_config(request, PASSWORD_FILE, CA_FILE if ca_pem else None)
    password = secrets.token_urlsafe(24)
    bundle = request.out / request.device
    with _staging(bundle) as staging:
        venue = inventory.model.venues[request.venue]
        header = (f"# {request.device} at {venue.name} ({venue.id}), {venue.village_name}, {venue.township_name}.\n"
                  f"# Made by `venuewatch provision device` on {dt.date.today()}. On the Pi: "
                  f"/etc/venuewatch/{request.device}.yaml,\n# with {PASSWORD_FILE} and {CA_FILE} beside it "
                  "(docs/provisioning.md).\n")
        write_new_file(staging / f"{request.device}.yaml", _device_yaml(data, header), 0o600)
        write_new_file(staging / PASSWORD_FILE, (password + "\n").encode(), 0o600)
        if ca_pem:
            write_new_file(staging / CA_FILE, ca_pem, 0o644)
        write_new_file(staging / "agent.env", f"VENUEWATCH_DEVICE={request.device}\n".encode(), 0o644)
        inventory.add_device(request.venue, request.device, [door for door, _ in request.doors])
        text = inventory.checked_text()
        replaced = set_password(request.passwd, request.device, password)
        backup = inventory.save(text)
        os.rename(staging, bundle)
    lines = [
        f"provisioned {request.device} at {venue.name} ({venue.id}):",
        f"  bundle     {bundle}/: {request.device}.yaml, {PASSWORD_FILE} (0600)"
        f"{', ' + CA_FILE if ca_pem else ''}, agent.env -> the Pi's /etc/venuewatch/ (docs/provisioning.md)",
        f"  passwd     {request.passwd}: {'replaced' if replaced else 'added'} user {request.device}",
        f"  inventory  {request.inventory}: added {request.device} (doors "
        f"{', '.join(f'{d} on BCM {p}' for d, p in request.doors)}); the previous file is {backup.name}",
        "  acl        " + _acl_note(request.acl, request.root),
    ]
    if request.firmware_dir:
        try:
            lines.append(f"  firmware   {_write_firmware_file(request, data, header)} (no password in it)")
        except ProvisionError as exc:  # the device is provisioned all the same: say so, not exit 2
            lines.append(f"  firmware   not written: {exc}")
    return "\n".join([*lines, *notes, *_reload_hint()])


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


def _write_firmware_file(request: DeviceRequest, data: dict[str, Any], header: str) -> Path:
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


def _acl_note(acl: Path, root: str) -> str:
    covered = acl_covers_devices(acl, root)
    if covered is None:
        return f"{acl}: not readable, not checked; it needs `pattern write {root}/%u/#` (deploy/mosquitto/acl)"
    if covered:
        return f"{acl}: `pattern write {root}/%u/#` covers the device; no line of its own needed"
    return (f"{acl}: WARNING: no `pattern write {root}/%u/#` line, so the device may not publish; "
            "install deploy/mosquitto/acl as this file")


def _reload_hint() -> list[str]:
    return ["next: sudo systemctl reload mosquitto        (mosquitto re-reads its password and ACL files on SIGHUP)",
            "      sudo systemctl restart venuewatch-server (the server reads the inventory when it starts)"]


# --- revoke --------------------------------------------------------------------------------------------------


def provision_revoke(device: str, inventory_path: Path, passwd: Path) -> str:
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
    return "\n".join([*lines, *_reload_hint()])
