"""`venuewatch provision`: the county CA, one MQTT identity per device, and revoking it.

Three commands replace the manual openssl / mosquitto_passwd steps of docs/operations.md
(the steps are in docs/provisioning.md):

- `ca`: a private CA and the broker's certificate. The CA key is written once and never overwritten,
  because a new CA locks out every Pi that trusts the old one.
- `device`: a random MQTT password in mosquitto's own password-file format, the device in the
  inventory, and a bundle folder for the installer (device file, password, CA certificate).
- `fleet`: `device` for every row of a CSV file; all rows are checked before anything is written, and the
  password file and the inventory are each written once.
- `revoke`: the device's password line and inventory entry go; its history stays in the database.

Secrets are created with their final mode (0600) by os.open, never chmod-ed afterwards, and shared
files (password file, inventory) are replaced atomically, keeping their owner and mode, because
mosquitto and the server read them as other users and must never see half a file.

Modules: files (writing secrets and shared files), certs (`ca`), passwd (mosquitto's password file and ACL),
inventory_edit (the inventory kept with its comments), device (`device` and `revoke`), fleet (`fleet`),
errors (ProvisionError).
"""

from __future__ import annotations

import argparse
import sys

from server.provision.certs import (
    CA_MIN_DAYS,
    DEFAULT_HOSTS,
    SERVER_CERT_DAYS,
    make_ca,
    make_server_cert,
    parse_host,
    provision_ca,
)
from server.provision.device import (
    CA_FILE,
    DEFAULT_PINS,
    PASSWORD_FILE,
    SERVER_USER,
    DeviceRequest,
    _inventory_and_passwd,
    check_device_id,
    device_config,
    parse_doors,
    provision_device,
    provision_revoke,
)
from server.provision.errors import ProvisionError
from server.provision.files import replace_file, write_new_file
from server.provision.fleet import FleetError, FleetRequest, parse_cameras, provision_fleet
from server.provision.inventory_edit import InventoryFile
from server.provision.passwd import (
    DEFAULT_ACL,
    DEFAULT_PASSWD,
    HASH_BYTES,
    PBKDF2_ITERATIONS,
    SALT_BYTES,
    acl_covers_devices,
    acl_users,
    hash_password,
    passwd_users,
    remove_password,
    set_password,
    set_passwords,
    verify_password,
)

__all__ = [
    "CA_FILE",
    "CA_MIN_DAYS",
    "DEFAULT_ACL",
    "DEFAULT_HOSTS",
    "DEFAULT_PASSWD",
    "DEFAULT_PINS",
    "HASH_BYTES",
    "PASSWORD_FILE",
    "PBKDF2_ITERATIONS",
    "SALT_BYTES",
    "SERVER_CERT_DAYS",
    "SERVER_USER",
    "DeviceRequest",
    "FleetError",
    "FleetRequest",
    "InventoryFile",
    "ProvisionError",
    "acl_covers_devices",
    "acl_users",
    "check_device_id",
    "device_config",
    "hash_password",
    "make_ca",
    "make_server_cert",
    "parse_cameras",
    "parse_doors",
    "parse_host",
    "passwd_users",
    "provision_ca",
    "provision_device",
    "provision_fleet",
    "provision_revoke",
    "remove_password",
    "replace_file",
    "run",
    "set_password",
    "set_passwords",
    "verify_password",
    "write_new_file",
]


def run(args: argparse.Namespace, default_config: str) -> int:
    """Entry point of `venuewatch provision …`; a ProvisionError is one line on stderr and exit 2."""
    try:
        if args.provision_command == "ca":
            report = provision_ca(args.out, args.host or list(DEFAULT_HOSTS), args.days)
        elif args.provision_command == "device":
            report = provision_device(DeviceRequest.from_args(args, default_config))
        elif args.provision_command == "fleet":
            report = provision_fleet(FleetRequest.from_args(args, default_config), progress=not args.no_progress)
        else:
            report = provision_revoke(args.id, *_inventory_and_passwd(args, default_config))
    except ProvisionError as exc:
        print(f"venuewatch provision: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0
