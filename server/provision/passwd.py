"""mosquitto's password file (its `$7$` hash format, written without mosquitto_passwd) and checks of its ACL."""

from __future__ import annotations

import base64
import contextlib
import grp
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from server.provision.errors import ProvisionError
from server.provision.files import _read_text, replace_file

DEFAULT_PASSWD = Path("/etc/mosquitto/venuewatch.passwd")
DEFAULT_ACL = Path("/etc/mosquitto/venuewatch.acl")
# mosquitto 2.0's mosquitto_passwd: `$7$` = PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, 64-byte hash,
# both base64 (standard alphabet, padded). The broker refuses other salt lengths. The iteration count is
# low, but each password is 192 random bits, so it only has to make a stolen file useless, not slow guessing.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64


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
    return bool(set_passwords(path, {user: password}))


def set_passwords(path: Path, passwords: dict[str, str]) -> set[str]:
    """Add or replace the lines of many users (user -> password) in ONE atomic replace; returns the replaced users.

    One write for a whole fleet: mosquitto may re-read the file at any moment and must see all or none.
    """
    lines, replaced = _lines_without(path, set(passwords))
    lines.extend(f"{user}:{hash_password(password)}" for user, password in passwords.items())
    _write_passwd(path, lines)
    return replaced


def remove_password(path: Path, user: str) -> bool:
    """Remove `user`'s line; returns False (and writes nothing) if there was none."""
    lines, removed = _lines_without(path, {user})
    if removed:
        _write_passwd(path, lines)
    return bool(removed)


def _lines_without(path: Path, users: set[str]) -> tuple[list[str], set[str]]:
    """The file's lines without those of `users`, and which of them had a line."""
    if not path.exists():
        if not path.parent.is_dir():
            raise ProvisionError(f"--passwd: the folder of {path} does not exist; give the broker's password_file "
                                 f"(default {DEFAULT_PASSWD})")
        return [], set()
    lines = _read_text(path, "mosquitto password file").splitlines()
    kept = [line for line in lines if _passwd_user(line) not in users]
    return kept, {user for line in lines if (user := _passwd_user(line)) in users}


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
