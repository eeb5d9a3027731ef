"""`venuewatch provision` without a broker: the CA and broker certificate, mosquitto's password-file format,
the inventory edited with its comments kept, the installer bundle, and every refusal (exit 2, one line,
nothing changed). tests/integration/test_provision_broker.py runs the same files against a real mosquitto."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import ipaddress
import os
import re
import shutil
import ssl
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from server import provision
from server.cli import main
from server.provision import ProvisionError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_INVENTORY = REPO / "deploy/examples/inventory.yaml"
ACL = REPO / "deploy/mosquitto/acl"
LINE = re.compile(r"^(?P<user>[^:]+):\$7\$101\$(?P<salt>[A-Za-z0-9+/]{16})\$(?P<hash>[A-Za-z0-9+/]{86}==)$")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- CA and broker certificate ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ca") / "ca"
    provision.provision_ca(out, ["mqtt.venuewatch.lan", "10.20.0.5", "::1"], 30)
    return out


def test_ca_is_a_ca_and_signs_the_broker_certificate(ca_dir):
    ca, server = cert(ca_dir / "ca.crt"), cert(ca_dir / "server.crt")
    ca.verify_directly_issued_by(ca)
    server.verify_directly_issued_by(ca)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    # The CA outlives many broker certificates; the broker certificate has the days asked for.
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= dt.timedelta(days=3650)
    assert server.not_valid_after_utc - dt.datetime.now(dt.UTC) == pytest.approx(dt.timedelta(days=30),
                                                                                abs=dt.timedelta(minutes=5))
    # Valid already for a Pi whose clock is a little behind before NTP.
    assert server.not_valid_before_utc < dt.datetime.now(dt.UTC) - dt.timedelta(hours=12)
    for path in ("ca.key", "server.key"):
        key = load_pem_private_key((ca_dir / path).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_broker_certificate_names_every_host_and_serves_tls_only(ca_dir):
    server = cert(ca_dir / "server.crt")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.venuewatch.lan"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.20.0.5"), ipaddress.ip_address("::1")]
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(("name", "accepted"), [("mqtt.venuewatch.lan", True), ("10.20.0.5", True),
                                                ("other.venuewatch.lan", False), ("10.20.0.6", False)])
def test_a_tls_client_trusting_the_ca_accepts_exactly_the_hosts(ca_dir, name, accepted):
    """A real handshake with Python's ssl, as the agent (paho) does it: hostname checked against the SANs."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(ca_dir / "server.crt", ca_dir / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(ca_dir / "ca.crt"))
    assert handshake(client_ctx, server_ctx, name) is accepted


def handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, name: str) -> bool:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLCertVerificationError:
                    return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return True
    raise AssertionError("handshake did not finish")


def test_default_hosts_and_key_modes_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        out = provision.provision_ca(tmp_path / "ca", ["localhost", "127.0.0.1"], 825).splitlines()
    finally:
        os.umask(old)
    folder = tmp_path / "ca"
    assert (mode(folder / "ca.key"), mode(folder / "server.key")) == (0o600, 0o600)
    assert (mode(folder / "ca.crt"), mode(folder / "server.crt")) == (0o644, 0o644)
    san = cert(folder / "server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    text = "\n".join(out)
    for where in ("/etc/mosquitto/certs/ca.crt", "/etc/mosquitto/certs/server.crt", "/etc/mosquitto/certs/server.key",
                  "OFFLINE", "every Pi"):
        assert where in text


def test_cli_default_hosts(tmp_path, capsys):
    assert main(["provision", "ca", "--out", str(tmp_path / "ca")]) == 0
    san = cert(tmp_path / "ca/server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert "wrote a new county CA" in capsys.readouterr().out


@pytest.mark.parametrize("existing", ["ca.key", "ca.crt"])
def test_ca_refuses_to_replace_an_existing_ca(tmp_path, capsys, existing):
    """ca.crt alone also stops it: the admin moved ca.key offline as told, and every Pi trusts that ca.crt."""
    out = tmp_path / "ca"
    out.mkdir()
    (out / existing).write_text("the old one\n")
    assert main(["provision", "ca", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("venuewatch provision: ") and err.count("\n") == 1 and existing in err
    assert "lock out every Pi" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [existing]
    assert (out / existing).read_text() == "the old one\n"


@pytest.mark.parametrize(("args", "expected"), [
    (["--host", "mqtts://broker:8883"], "--host: 'mqtts://broker:8883' is not a host name or IP address"),
    (["--host", "bad_name.lan"], "--host: 'bad_name.lan'"),
    (["--days", "0"], "--days: 0 is out of range"),
])
def test_ca_bad_input(tmp_path, capsys, args, expected):
    assert main(["provision", "ca", "--out", str(tmp_path / "ca"), *args]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "ca").exists()


# --- mosquitto password file --------------------------------------------------------------------------------


def test_hash_is_mosquitto_2_pbkdf2_sha512():
    line = "pi-0009:" + provision.hash_password("s3cret")
    match = LINE.match(line)
    assert match, line
    salt, digest = base64.b64decode(match["salt"]), base64.b64decode(match["hash"])
    assert len(salt) == 12 and len(digest) == 64
    assert digest == hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101, 64)
    assert provision.hash_password("s3cret") != provision.hash_password("s3cret")  # a new salt each time


def test_verify_password():
    encoded = provision.hash_password("right password")
    assert provision.verify_password(encoded, "right password")
    assert not provision.verify_password(encoded, "wrong password")
    # mosquitto 1.x's `$6$`: sha512(password + salt)
    salt = b"0123456789ab"
    old = f"$6${base64.b64encode(salt).decode()}${base64.b64encode(hashlib.sha512(b'pw' + salt).digest()).decode()}"
    assert provision.verify_password(old, "pw") and not provision.verify_password(old, "px")
    for garbage in ("", "plain", "$7$101$!!$??", "$7$x$AAAA$AAAA", "$9$1$AA$AA"):
        assert not provision.verify_password(garbage, "pw")


def test_password_file_add_replace_remove_keeps_other_lines(tmp_path):
    passwd = tmp_path / "venuewatch.passwd"
    passwd.write_text("# made by hand\nvenuewatch-server:$7$101$AAAAAAAAAAAAAAAA$xx\n\npi-0001:$7$101$BBBB$yy\n")
    passwd.chmod(0o640)
    assert provision.set_password(passwd, "pi-0009", "first") is False
    assert provision.set_password(passwd, "pi-0009", "second") is True
    lines = passwd.read_text().splitlines()
    assert lines[:4] == ["# made by hand", "venuewatch-server:$7$101$AAAAAAAAAAAAAAAA$xx", "", "pi-0001:$7$101$BBBB$yy"]
    assert len(lines) == 5 and LINE.match(lines[4])
    users = provision.passwd_users(passwd)
    assert provision.verify_password(users["pi-0009"], "second") and not provision.verify_password(users["pi-0009"],
                                                                                                   "first")
    assert mode(passwd) == 0o640
    assert provision.remove_password(passwd, "pi-0009") is True
    assert passwd.read_text().splitlines() == lines[:4]
    before = passwd.stat().st_mtime_ns
    assert provision.remove_password(passwd, "pi-0009") is False
    assert passwd.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == ["venuewatch.passwd"]  # no temporary file left behind


def test_password_file_never_wider_than_0640_and_keeps_its_group(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    passwd.chmod(0o644)
    provision.set_password(passwd, "pi-1", "x")
    assert mode(passwd) == 0o640
    passwd.chmod(0o600)
    provision.set_password(passwd, "pi-2", "x")
    assert mode(passwd) == 0o600
    new = tmp_path / "new.passwd"
    provision.set_password(new, "pi-1", "x")
    assert mode(new) in (0o600, 0o640)
    if os.geteuid() == 0:  # mosquitto reads the file through its group: a replaced file keeps it
        os.chown(passwd, 0, 65534)
        provision.set_password(passwd, "pi-3", "x")
        assert passwd.stat().st_gid == 65534


def test_acl_check():
    assert provision.acl_covers_devices(ACL, "vw") is True
    assert provision.acl_covers_devices(ACL, "other") is False
    assert provision.acl_covers_devices(Path("/nonexistent/acl"), "vw") is None
    # The server's account and, split into roles (docs/scaling.md), one per role: none may be a device id.
    assert provision.acl_users(ACL) == {"venuewatch-server", "venuewatch-ingest-1", "venuewatch-ingest-2",
                                        "venuewatch-web", "venuewatch-scheduler"}


# --- inventory round trip -----------------------------------------------------------------------------------


def comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


@pytest.mark.parametrize("venue", ["venue-dongshan-djfw", "venue-taohua-shuwu", "venue-xiahe-jianshen"])
def test_inventory_gains_exactly_the_device_lines_and_revoke_gives_the_file_back(tmp_path, venue):
    """Comments, order, quotes and indentation stay; `devices: []` becomes a list; the comment lines after a
    venue (about the next village) stay after the new entry."""
    from server.inventory import load_inventory

    path = tmp_path / "inventory.yaml"
    shutil.copy(EXAMPLE_INVENTORY, path)
    original = path.read_text()
    edit = provision.InventoryFile(path)
    edit.add_device(venue, "pi-0099", ["front", "back"])
    edit.save(edit.checked_text())
    added = path.read_text()
    assert comments(added) == comments(original)
    lines = added.splitlines()
    at = lines.index(next(line for line in lines if line.strip() == "- id: pi-0099"))
    assert lines[at + 1].strip() == "doors: [front, back]"
    without = lines[:at] + lines[at + 2:]
    if venue == "venue-taohua-shuwu":  # `devices: []` loses its `[]` and keeps its comment, aligned
        assert without[at - 1] == original.splitlines()[at - 1].replace("[]", "  ")
        without[at - 1] = original.splitlines()[at - 1]
    assert without == original.splitlines()
    assert load_inventory(path).device_venue["pi-0099"] == venue
    assert load_inventory(path).device_doors["pi-0099"] == ("front", "back")
    assert (tmp_path / "inventory.yaml.bak").read_text() == original

    edit = provision.InventoryFile(path)
    assert edit.remove_device("pi-0099") == venue
    edit.save(edit.checked_text())
    assert path.read_text() == original
    assert (tmp_path / "inventory.yaml.bak").read_text() == added


@pytest.mark.parametrize("style", ["pyyaml", "comments"])
def test_inventory_other_layouts(tmp_path, style):
    """Files written by yaml.safe_dump (lists not indented), a venue without `devices`, comments deep inside
    the last device."""
    from server.inventory import load_inventory

    if style == "pyyaml":
        venues = [{"id": "x", "name": "场所", "devices": [{"id": "a", "doors": ["front"]}]},
                  {"id": "y", "name": "场所2"}]
        villages = [{"id": "v", "name": "村", "venues": venues}]
        text = yaml.safe_dump({"county": {"id": "c", "name": "县"}, "townships": [{"id": "t", "name": "镇",
                                                                                "villages": villages}]},
                              allow_unicode=True, sort_keys=False)
    else:
        text = ("county: {id: c, name: 县}\ntownships:\n  - id: t\n    name: 镇\n    villages:\n      - id: v\n"
                "        name: 村\n        venues:\n          - id: x\n            name: 场所\n            devices:\n"
                "              - id: a\n                doors: [front]\n                cameras:\n"
                "                  - id: cam1\n                    covers: [front]   # the porch camera\n"
                "            # about y\n          - id: y\n            name: 场所2   # no devices yet\n"
                "      # about v2\n      - id: v2\n        name: 村2\n# end\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    for venue, device in (("x", "pi-1"), ("y", "pi-2")):
        edit = provision.InventoryFile(path)
        edit.add_device(venue, device, ["front"])
        edit.save(edit.checked_text())
        assert load_inventory(path).device_venue[device] == venue
        assert comments(path.read_text()) == comments(text)
    after = path.read_text()
    assert after.index("pi-1") < after.index("- id: y") and after.index("pi-2") > after.index("- id: y")
    for device in ("pi-1", "pi-2"):
        edit = provision.InventoryFile(path)
        edit.remove_device(device)
        edit.save(edit.checked_text())
    # Back to the original, except that y now says it has no devices.
    lines = path.read_text().splitlines()
    assert [line.strip() for line in lines if line not in text.splitlines()] == ["devices: []"]
    assert [line for line in lines if line.strip() != "devices: []"] == text.splitlines()
    assert load_inventory(path).device_venue == {"a": "x"}


# --- provision device / revoke through the command line ------------------------------------------------------


@pytest.fixture
def site(tmp_path, ca_dir) -> dict[str, Path]:
    """What an admin has on the county server: inventory, password file with the server's account, ACL, CA."""
    inventory = tmp_path / "etc/inventory.yaml"
    inventory.parent.mkdir()
    shutil.copy(EXAMPLE_INVENTORY, inventory)
    passwd = tmp_path / "etc/venuewatch.passwd"
    provision.set_password(passwd, "venuewatch-server", "server password")
    return {"inventory": inventory, "passwd": passwd, "acl": ACL, "ca": ca_dir / "ca.crt", "out": tmp_path / "bundles",
            "tmp": tmp_path}


def device_args(site: dict[str, Path], device: str = "pi-0099", *extra: str) -> list[str]:
    return ["provision", "device", device, "--venue", "venue-taohua-shuwu", "--inventory", str(site["inventory"]),
            "--passwd", str(site["passwd"]), "--acl", str(site["acl"]), "--broker-url",
            "mqtts://mqtt.venuewatch.lan:8883", "--ca-file", str(site["ca"]), "--out", str(site["out"]), *extra]


def test_provision_device_writes_bundle_password_line_and_inventory(site, capsys):
    from edge.config import load_device_config
    from server.inventory import load_inventory

    old = os.umask(0)
    try:
        assert main(device_args(site, "pi-0099", "--doors", "front,back:27,side",
                                "--firmware-dir", str(site["tmp"] / "firmware"))) == 0
    finally:
        os.umask(old)
    out, err = capsys.readouterr()
    bundle = site["out"] / "pi-0099"
    assert sorted(p.name for p in bundle.iterdir()) == ["agent.env", "ca.crt", "mqtt-password", "pi-0099.yaml"]
    assert mode(bundle) == 0o700 and mode(bundle / "mqtt-password") == 0o600 and mode(bundle / "pi-0099.yaml") == 0o600
    assert [p.name for p in site["out"].iterdir()] == ["pi-0099"]  # no staging folder left
    password = (bundle / "mqtt-password").read_text().strip()
    assert len(password) >= 32
    assert password not in out + err and password not in (bundle / "pi-0099.yaml").read_text()
    assert provision.verify_password(provision.passwd_users(site["passwd"])["pi-0099"], password)
    assert "venuewatch-server" in provision.passwd_users(site["passwd"])
    assert (bundle / "ca.crt").read_bytes() == site["ca"].read_bytes()
    assert (bundle / "agent.env").read_text() == "VENUEWATCH_DEVICE=pi-0099\n"

    config = load_device_config(bundle / "pi-0099.yaml")  # the agent's own loader
    assert config.device == config.broker.username == "pi-0099"
    assert config.broker.url == "mqtts://mqtt.venuewatch.lan:8883"
    assert config.broker.read_password() == password
    assert config.broker.ca_file == bundle / "ca.crt"
    assert [(d.id, d.pin) for d in config.doors] == [("front", 17), ("back", 27), ("side", 22)]
    assert load_inventory(site["inventory"]).device_venue["pi-0099"] == "venue-taohua-shuwu"
    assert load_inventory(site["inventory"]).device_doors["pi-0099"] == ("front", "back", "side")

    firmware = (site["tmp"] / "firmware/pi-0099.yaml").read_text()
    assert password not in firmware and "password:" not in firmware
    assert "password_file: /etc/venuewatch/mqtt-password" in firmware and "ca_file: /etc/venuewatch/ca.crt" in firmware

    for said in ("added user pi-0099", "pattern write vw/%u/#", "systemctl reload mosquitto", "SIGHUP",
                 "event=inventory_reloaded", str(bundle)):
        assert said in out
    assert err == ""


def test_check_config_accepts_the_bundle(site, capsys):
    from server.configcheck import check_file

    assert main(device_args(site)) == 0
    capsys.readouterr()
    check_file(site["out"] / "pi-0099/pi-0099.yaml", None)  # raises ConfigError if not


def test_provision_device_defaults_come_from_the_server_config(site, capsys):
    server = site["tmp"] / "etc/server.yaml"
    server.write_text(f"broker:\n  url: mqtts://mqtt.county.lan:8883\n  username: venuewatch-server\n"
                      f"  password_file: mqtt-password\n  ca_file: {site['ca']}\ninventory: inventory.yaml\n"
                      "data_dir: /tmp/unused\n")
    assert main(["provision", "device", "pi-0100", "--venue", "venue-taohua-shuwu", "--config", str(server),
                 "--passwd", str(site["passwd"]), "--acl", str(site["acl"]), "--out", str(site["out"])]) == 0
    capsys.readouterr()
    device = yaml.safe_load((site["out"] / "pi-0100/pi-0100.yaml").read_text())
    assert device["broker"]["url"] == "mqtts://mqtt.county.lan:8883" and device["broker"]["ca_file"] == "ca.crt"
    assert "pi-0100" in site["inventory"].read_text()


def test_acl_without_the_device_pattern_is_reported(site, capsys):
    acl = site["tmp"] / "acl"
    acl.write_text("user venuewatch-server\ntopic read vw/#\n")
    site["acl"] = acl
    assert main(device_args(site)) == 0
    assert "WARNING: no `pattern write vw/%u/#` line" in capsys.readouterr().out


def unchanged(site: dict[str, Path]) -> tuple[str, str]:
    return site["inventory"].read_text(), site["passwd"].read_text()


@pytest.mark.parametrize(("device", "extra", "expected"), [
    ("Pi-0099", [], "device id 'Pi-0099' is not valid"),
    ("pi/0099", [], "device id 'pi/0099' is not valid"),
    ("venuewatch-server", [], "is the server's MQTT account"),
    ("pi-0001", [], "device 'pi-0001' is already at venue-dongshan-djfw"),
    ("pi-0099", ["--venue", "venue-nowhere"], "--venue: 'venue-nowhere' is not a venue in"),
    ("pi-0099", ["--doors", "front,front"], "--doors: door front is given twice"),
    ("pi-0099", ["--doors", "front:17,back:17"], "--doors: pin 17 is given twice"),
    ("pi-0099", ["--doors", "front:40"], "--doors: pin '40' of 'front' is not a Raspberry Pi GPIO"),
    ("pi-0099", ["--doors", "Front Door"], "--doors: 'Front Door' is not a door id"),
    ("pi-0099", ["--broker-url", "https://broker"], "broker.url: 'https://broker' is not a broker URL"),
    ("pi-0099", ["--ca-file", str(ACL)], "is not a PEM certificate"),
    ("pi-0099", ["--ca-file", "/nonexistent/ca.crt"], "--ca-file: cannot read /nonexistent/ca.crt"),
    ("pi-0099", ["--passwd", "/nonexistent/dir/passwd"], "--passwd: the folder of /nonexistent/dir/passwd"),
])
def test_provision_device_refusals_change_nothing(site, capsys, device, extra, expected):
    before = unchanged(site)
    assert main(device_args(site, device, *extra)) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert err.startswith("venuewatch provision: ") and err.count("\n") == 1
    assert unchanged(site) == before
    assert not site["out"].exists() or list(site["out"].iterdir()) == []


def test_an_existing_bundle_is_never_overwritten(site, capsys):
    (site["out"] / "pi-0099").mkdir(parents=True)
    before = unchanged(site)
    assert main(device_args(site)) == 2
    assert "--out: " in capsys.readouterr().err and unchanged(site) == before


def test_without_inventory_or_server_config(tmp_path, capsys):
    assert main(["provision", "device", "pi-1", "--venue", "v", "--broker-url", "mqtts://h:8883",
                 "--passwd", str(tmp_path / "p"), "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read the server config" in capsys.readouterr().err
    args = argparse.Namespace(config=None, inventory=None, passwd=tmp_path / "p")
    with pytest.raises(ProvisionError, match="--inventory: no inventory given and no server config at"):
        provision._inventory_and_passwd(args, str(tmp_path / "no-default-server.yaml"))


def test_a_broken_inventory_is_a_config_error(site, capsys):
    site["inventory"].write_text(site["inventory"].read_text().replace("08:30-12:00", "8-12", 1))
    assert main(device_args(site)) == 2
    err = capsys.readouterr().err
    assert str(site["inventory"]) in err and "'8-12' is not a period" in err and "Traceback" not in err


def test_revoke_removes_password_line_and_inventory_entry(site, capsys):
    from server.inventory import load_inventory

    original = site["inventory"].read_text()
    assert main(device_args(site)) == 0
    assert main(["provision", "revoke", "pi-0099", "--inventory", str(site["inventory"]),
                 "--passwd", str(site["passwd"])]) == 0
    out = capsys.readouterr().out
    assert "pi-0099" not in provision.passwd_users(site["passwd"])
    assert "venuewatch-server" in provision.passwd_users(site["passwd"])
    assert "pi-0099" not in load_inventory(site["inventory"]).device_venue
    assert site["inventory"].read_text() == original
    assert "removed user pi-0099" in out and "stay in the database" in out and "systemctl reload mosquitto" in out


def test_revoke_an_account_that_is_only_in_the_password_file(site, capsys):
    provision.set_password(site["passwd"], "pi-old", "x")
    assert main(["provision", "revoke", "pi-old", "--inventory", str(site["inventory"]),
                 "--passwd", str(site["passwd"])]) == 0
    assert "pi-old was not listed" in capsys.readouterr().out
    assert "pi-old" not in provision.passwd_users(site["passwd"])


@pytest.mark.parametrize(("device", "expected"), [
    ("pi-0099", "device 'pi-0099' is neither in"),
    ("venuewatch-server", "is the server's MQTT account"),
    ("PI-1", "is not valid"),
])
def test_revoke_refusals(site, capsys, device, expected):
    before = unchanged(site)
    assert main(["provision", "revoke", device, "--inventory", str(site["inventory"]),
                 "--passwd", str(site["passwd"])]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert unchanged(site) == before


def _register_from_console(site: dict[str, Path], device: str, doors: list[str]) -> str:
    """What 管理 → 登记设备 does: the device in the inventory, no MQTT account yet (server/admin/editor.py)."""
    from server.provision.inventory_edit import InventoryFile

    editor = InventoryFile(site["inventory"])
    editor.add_device("venue-taohua-shuwu", device, doors)
    editor.save(editor.checked_text())
    return site["inventory"].read_text()


def test_a_device_registered_from_the_console_gets_only_its_account_and_bundle(site, capsys):
    registered = _register_from_console(site, "pi-0099", ["front", "back"])
    assert main(device_args(site, "pi-0099", "--doors", "front,back:27")) == 0
    out = capsys.readouterr().out
    assert "pi-0099 was registered there already (doors front on BCM 17, back on BCM 27); unchanged" in out
    assert site["inventory"].read_text() == registered  # not written again, not listed twice
    password = (site["out"] / "pi-0099" / "mqtt-password").read_text().strip()
    assert provision.verify_password(provision.passwd_users(site["passwd"])["pi-0099"], password)

    # Once it has an account, the same command is refused: a second password would lock the Pi out.
    before = unchanged(site)
    shutil.rmtree(site["out"] / "pi-0099")
    assert main(device_args(site, "pi-0099", "--doors", "front,back")) == 2
    assert "has an MQTT account already; run `venuewatch provision revoke pi-0099` first" in capsys.readouterr().err
    assert unchanged(site) == before


def test_a_registered_device_with_other_doors_is_refused(site, capsys):
    _register_from_console(site, "pi-0099", ["front", "back"])
    before = unchanged(site)
    assert main(device_args(site, "pi-0099", "--doors", "front")) == 2
    err = capsys.readouterr().err
    assert "--doors: pi-0099 is registered at venue-taohua-shuwu with doors front,back; give the same doors" in err
    assert unchanged(site) == before


def test_provision_waits_while_the_console_edits_the_inventory(site, capsys):
    import threading

    from server.provision.files import inventory_lock

    codes: list[int] = []
    with inventory_lock(site["inventory"]):  # as the console's 管理 page holds it during an edit
        worker = threading.Thread(target=lambda: codes.append(main(device_args(site))))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and codes == [], "provision wrote the inventory while the console held its lock"
    worker.join(timeout=30)
    assert codes == [0]
    assert "pi-0099" in site["inventory"].read_text()
