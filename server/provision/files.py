"""Writing the provisioning files: secrets created with their final mode, shared files replaced atomically."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from server.provision.errors import ProvisionError


@contextlib.contextmanager
def inventory_lock(path: Path) -> Iterator[None]:
    """One writer of the inventory at a time: `provision` here, the console's 管理 pages in the server.

    The lock file sits beside the inventory. It is opened read-only (flock needs no more), so root and the
    service account can each take a lock file the other created.
    """
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ProvisionError(f"{lock_path}: cannot create the inventory's lock file ({exc.strerror}); the "
                             "inventory's folder must be writable by whoever edits it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
