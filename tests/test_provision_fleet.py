"""`venuewatch provision fleet`: many devices from one CSV, every row checked before anything is written, the
password file and the inventory written once each, progress on stderr, and a rerun after a crash. A fleet device
connecting to the production-like mosquitto: tests/integration/test_provision_broker.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from server import provision
from server.cli import main
from server.provision import fleet

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_INVENTORY = REPO / "deploy/examples/inventory.yaml"
ACL = REPO / "deploy/mosquitto/acl"
BIN = Path(sys.executable).parent
VENUES = ["venue-dongshan-djfw", "venue-taohua-shuwu", "venue-xiahe-jianshen", "venue-liushuwan-djfw"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ca") / "ca"
    provision.provision_ca(out, ["mqtt.venuewatch.lan"], 30)
    return out / "ca.crt"


@pytest.fixture
def site(tmp_path, ca_file) -> dict[str, Path]:
    """The admin's county server: the example inventory, a password file with the server's account, the CA."""
    inventory = tmp_path / "etc/inventory.yaml"
    inventory.parent.mkdir()
    shutil.copy(EXAMPLE_INVENTORY, inventory)
    passwd = tmp_path / "etc/venuewatch.passwd"
    provision.set_password(passwd, "venuewatch-server", "server password")
    return {"inventory": inventory, "passwd": passwd, "ca": ca_file, "out": tmp_path / "bundles", "tmp": tmp_path}


def fleet_args(site: dict[str, Path], csv: Path, *extra: str) -> list[str]:
    return ["provision", "fleet", str(csv), "--inventory", str(site["inventory"]), "--passwd", str(site["passwd"]),
            "--acl", str(ACL), "--broker-url", "mqtts://mqtt.venuewatch.lan:8883", "--ca-file", str(site["ca"]),
            "--out", str(site["out"]), *extra]


def fleet_rows(count: int) -> list[tuple[str, str, str, str]]:
    """(device, venue, doors, cameras): venues in turn; every third with two doors, every fifth with a camera."""
    rows = []
    for n in range(count):
        doors = "front,back:27" if n % 3 == 0 else ("" if n % 3 == 1 else "side")
        cameras = f"hall /dev/video0 {doors.split(',')[0] or 'front'}" if n % 5 == 0 else ""
        rows.append((f"pi-{n + 100:04d}", VENUES[n % len(VENUES)], doors, cameras))
    return rows


def write_csv(path: Path, rows: list[tuple[str, ...]], header: str = "device,venue,doors,cameras") -> Path:
    def cell(text: str) -> str:
        return f'"{text}"' if "," in text else text

    path.write_text(header + "\n" + "".join(",".join(cell(c) for c in row) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def check_provisioned(site: dict[str, Path], rows: list[tuple[str, str, str, str]]) -> None:
    """Every row's device: a password line that verifies against its bundle, its inventory entry, its bundle."""
    from edge.config import load_device_config
    from server.inventory import load_inventory

    users = provision.passwd_users(site["passwd"])
    inventory = load_inventory(site["inventory"])  # the server's own loader: the edited file still validates
    assert set(users) == {"venuewatch-server"} | {row[0] for row in rows}
    for device, venue, doors, cameras in rows:
        bundle = site["out"] / device
        assert sorted(p.name for p in bundle.iterdir()) == ["agent.env", "ca.crt", "mqtt-password", f"{device}.yaml"]
        assert mode(bundle) == 0o700 and mode(bundle / "mqtt-password") == 0o600
        assert mode(bundle / f"{device}.yaml") == 0o600
        password = (bundle / "mqtt-password").read_text().strip()
        assert len(password) >= 32 and provision.verify_password(users[device], password), device
        assert inventory.device_venue[device] == venue
        door_ids = tuple(d.partition(":")[0] for d in (doors or "front").split(","))
        assert inventory.device_doors[device] == door_ids
        config = load_device_config(bundle / f"{device}.yaml")  # the agent's own loader
        assert config.broker.username == device and config.broker.read_password() == password
        assert [d.id for d in config.doors] == list(door_ids)
        if cameras:
            assert [(c.id, c.source) for c in config.cameras] == [("hall", "/dev/video0")]
            assert [(c.id, tuple(c.covers)) for c in inventory.device_cameras[device]] == [("hall", door_ids[:1])]
        else:
            assert config.cameras == [] and inventory.device_cameras[device] == ()
    # Nothing else in OUT/: no staging folder left behind.
    assert sorted(p.name for p in site["out"].iterdir()) == sorted(row[0] for row in rows)


@pytest.fixture
def writes(monkeypatch) -> dict[str, list[Path]]:
    """Every atomic replace of a shared file, by the module that asked for it."""
    seen: dict[str, list[Path]] = {"passwd": [], "inventory": []}
    for module, key in ((provision.passwd, "passwd"), (provision.inventory_edit, "inventory")):
        def spy(path, data, mode, owner=None, real=module.replace_file, key=key):
            seen[key].append(path)
            return real(path, data, mode, owner)

        monkeypatch.setattr(module, "replace_file", spy)
    return seen


def test_fifty_devices_in_one_run_with_one_write_of_each_shared_file(site, capsys, writes):
    rows = fleet_rows(50)
    csv = write_csv(site["tmp"] / "fleet.csv", rows)
    original_inventory = site["inventory"].read_text()
    assert main(fleet_args(site, csv, "--no-progress")) == 0
    out, err = capsys.readouterr()
    check_provisioned(site, rows)
    assert writes == {"passwd": [site["passwd"]],
                      "inventory": [site["inventory"].with_name("inventory.yaml.bak"), site["inventory"]]}
    assert site["inventory"].with_name("inventory.yaml.bak").read_text() == original_inventory
    assert out.startswith(f"provisioned 50 devices from {csv}:\n")
    assert "added 50 users (one write)" in out and "added 50 devices to 4 venues (one write)" in out
    assert "pi-0100      venue-dongshan-djfw  doors front:17, back:27  cameras hall" in out
    assert "systemctl reload mosquitto" in out
    assert err == ""  # --no-progress
    for device, *_ in rows:  # no password is ever printed
        assert (site["out"] / device / "mqtt-password").read_text().strip() not in out


def test_the_original_comments_stay_and_the_file_validates(site, capsys):
    from server.inventory import load_inventory

    rows = [("pi-0200", "venue-taohua-shuwu", "front", ""), ("pi-0201", "venue-taohua-shuwu", "front", "")]
    original = site["inventory"].read_text()
    assert main(fleet_args(site, write_csv(site["tmp"] / "f.csv", rows), "--no-progress")) == 0
    after = site["inventory"].read_text()
    assert [line for line in original.splitlines() if "#" in line and "devices: []" not in line] == \
        [line for line in after.splitlines() if "#" in line and "devices:" not in line]
    assert load_inventory(site["inventory"]).device_venue["pi-0201"] == "venue-taohua-shuwu"


BAD_ROWS = [
    ("pi-0100", "venue-taohua-shuwu", "front", ""),              # 2: good
    ("Pi-0101", "venue-taohua-shuwu", "front", ""),              # 3: device id not valid
    ("pi-0102", "venue-nowhere", "front", ""),                   # 4: unknown venue
    ("pi-0100", "venue-dongshan-djfw", "front", ""),             # 5: same id as line 2
    ("pi-0001", "venue-dongshan-djfw", "front", ""),             # 6: in the inventory already
    ("pi-0103", "venue-dongshan-djfw", "front:40", ""),          # 7: bad doors spec
    ("pi-0104", "venue-dongshan-djfw", "front", "hall /dev/video0 back"),  # 8: camera sees a door not listed
    ("pi-old", "venue-dongshan-djfw", "front", ""),              # 9: in the password file already
    ("pi-0105", "venue-dongshan-djfw", "front", ""),             # 10: good
]


def test_bad_rows_are_all_named_and_nothing_changes(site, capsys):
    provision.set_password(site["passwd"], "pi-old", "x")
    before = site["inventory"].read_text(), site["passwd"].read_text()
    csv = write_csv(site["tmp"] / "fleet.csv", BAD_ROWS)
    with csv.open("a") as f:
        f.write("pi-0106,venue-dongshan-djfw,front,back\n")  # 11: a doors list with a comma, not quoted
    assert main(fleet_args(site, csv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith(f"venuewatch provision: {csv}: 8 of 10 rows cannot be provisioned; nothing was changed")
    expected = {
        3: "device: device id 'Pi-0101' is not valid", 4: "venue: 'venue-nowhere' is not a venue in",
        5: "device: 'pi-0100' is also on line 2", 6: "device: ", 7: "doors: pin '40' of 'front' is not a Raspberry Pi",
        8: "cameras: camera 'hall' sees door 'back', which is not in this row's doors",
        9: "device: device 'pi-old' already has an account in", 11: "cameras: camera 'back' has no source",
    }
    problems = err.splitlines()[1:]
    assert [int(line.split(":")[1]) for line in problems] == sorted(expected)  # one line per bad row, in order
    for line, said in zip(problems, (expected[n] for n in sorted(expected)), strict=True):
        assert line.startswith(f"  {csv}:") and said in line, line
    assert "is already at venue-dongshan-djfw" in problems[3] and "provision revoke pi-0001" in problems[3]
    assert "(try 'pi-0101')" in problems[0] and 'in quotes: "front,back"' in problems[-1]
    assert (site["inventory"].read_text(), site["passwd"].read_text()) == before
    assert not site["out"].exists()
    # No new file beside them (no .bak): only the lock every inventory writer takes (server/provision/files.py).
    assert sorted(p.name for p in site["inventory"].parent.iterdir()) == [".inventory.yaml.lock", "inventory.yaml",
                                                                          "venuewatch.passwd"]


def test_an_existing_bundle_folder_is_a_bad_row(site, capsys):
    (site["out"] / "pi-0101").mkdir(parents=True)
    rows = [("pi-0100", "venue-taohua-shuwu", "", ""), ("pi-0101", "venue-taohua-shuwu", "", "")]
    assert main(fleet_args(site, write_csv(site["tmp"] / "f.csv", rows))) == 2
    err = capsys.readouterr().err
    assert f"f.csv:3: device: the bundle {site['out'] / 'pi-0101'} exists already" in err
    assert sorted(p.name for p in site["out"].iterdir()) == ["pi-0101"]


@pytest.mark.parametrize(("text", "expected"), [
    ("device,venue,door\npi-1,venue-taohua-shuwu,front\n", "f.csv:1: column 'door' is not known; the columns are"),
    ("device,doors\npi-1,front\n", "f.csv:1: the header has no 'venue' column"),
    ("device,venue\n", "f.csv: no devices in it"),
    ("", "f.csv: no devices in it"),
])
def test_a_file_that_cannot_be_read_as_a_fleet_is_one_line(site, capsys, text, expected):
    csv = site["tmp"] / "f.csv"
    csv.write_text(text)
    before = site["passwd"].read_text()
    assert main(fleet_args(site, csv)) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert site["passwd"].read_text() == before


def test_comments_blank_lines_a_bom_and_any_column_order(site, capsys):
    csv = site["tmp"] / "f.csv"
    csv.write_text("\ufeffvenue,device\n# the bench\n\nvenue-taohua-shuwu,pi-0300\n", encoding="utf-8")
    assert main(fleet_args(site, csv, "--no-progress")) == 0
    capsys.readouterr()
    check_provisioned(site, [("pi-0300", "venue-taohua-shuwu", "", "")])


def test_progress_on_stderr_when_not_a_terminal_and_stdout_is_the_summary(site):
    rows = fleet_rows(20)
    csv = write_csv(site["tmp"] / "fleet.csv", rows)
    done = subprocess.run([str(BIN / "venuewatch"), *fleet_args(site, csv)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("provision fleet:")]
    # Not a terminal: a plain line per 10 % (2 of 20 devices), with rate and ETA, then the summary.
    assert [line.split()[2] for line in progress] == [f"{n}/20" for n in range(2, 20, 2)] + ["20/20"]
    assert all(" devices " in line and "/s" in line and " ETA " in line for line in progress[:-1])
    assert progress[-1].startswith("provision fleet: 20/20 devices in ") and "\r" not in done.stderr
    assert done.stderr.splitlines() == progress
    assert done.stdout.startswith(f"provisioned 20 devices from {csv}:\n") and "provision fleet:" not in done.stdout
    check_provisioned(site, rows)


def crash_at(point: str, site: dict[str, Path], csv: Path, monkeypatch) -> None:
    """Run the fleet in a child process that dies at `point` (os._exit: no finally, no cleanup), as a power cut."""
    calls = {"n": 0}

    def die_on(nth: int, real=None):
        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == nth:
                os._exit(9)
            return real(*args, **kwargs)
        return dying

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            if point == "staging":
                monkeypatch.setattr(fleet, "write_bundle", die_on(5, fleet.write_bundle))
            elif point == "inventory":
                monkeypatch.setattr(provision.InventoryFile, "save", die_on(1))
            else:
                monkeypatch.setattr(fleet.os, "rename", die_on(4, os.rename))
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                os.dup2(null.fileno(), 2)
            main(fleet_args(site, csv, "--no-progress"))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9, "the simulated crash did not happen"


@pytest.mark.parametrize("point", ["staging", "inventory", "moving"])
def test_a_rerun_after_a_crash_finishes_the_job(site, capsys, monkeypatch, point):
    rows = fleet_rows(10)
    csv = write_csv(site["tmp"] / "fleet.csv", rows)
    original = site["inventory"].read_text()
    crash_at(point, site, csv, monkeypatch)

    # What the crash left: the staging folder always; the password file from "inventory" on; some bundles moved.
    users = provision.passwd_users(site["passwd"])
    leftovers = [p for p in site["out"].iterdir() if p.name.startswith(fleet.STAGING_PREFIX)]
    assert len(leftovers) == 1 and mode(leftovers[0]) == 0o700
    assert ("pi-0100" in users) is (point != "staging")
    assert (site["inventory"].read_text() == original) is (point != "moving")
    moved = sorted(p.name for p in site["out"].iterdir() if not p.name.startswith("."))
    assert moved == (["pi-0100", "pi-0101", "pi-0102"] if point == "moving" else [])

    assert main(fleet_args(site, csv, "--no-progress")) == 0
    out = capsys.readouterr().out
    check_provisioned(site, rows)  # also: the leftover staging folder is gone
    assert site["inventory"].read_text().count("- id: pi-0100\n") == 1  # replaced, not added twice
    if point != "staging":
        assert "(10 redone after an interrupted run)" in out and "replaced 10" in out


def test_a_leftover_folder_does_not_make_someone_elses_account_ours(site, capsys):
    """A staging folder lists pi-0100, but the password line was made with another password: still refused."""
    staging = site["out"] / f"{fleet.STAGING_PREFIX}old"
    (staging / "pi-0100").mkdir(parents=True)
    (staging / fleet.MANIFEST).write_text("pi-0100\n")
    (staging / "pi-0100/mqtt-password").write_text("the staged password\n")
    provision.set_password(site["passwd"], "pi-0100", "the password someone else made")
    rows = [("pi-0100", "venue-taohua-shuwu", "", "")]
    assert main(fleet_args(site, write_csv(site["tmp"] / "f.csv", rows))) == 2
    assert "device 'pi-0100' already has an account in" in capsys.readouterr().err


def test_parse_cameras():
    doors = ["front", "back", "side"]
    cameras = fleet.parse_cameras("hall /dev/video0 front back; yard rtsp://10.0.0.5/s1 side", doors)
    assert cameras == [("hall", "/dev/video0", ["front", "back"]), ("yard", "rtsp://10.0.0.5/s1", ["side"])]
    assert fleet.parse_cameras(" ", ["front"]) == []
    for text, said in (("Hall /dev/video0", "'Hall' is not a camera id"), ("hall", "camera 'hall' has no source"),
                       ("hall 0; hall 1", "camera 'hall' is given twice")):
        with pytest.raises(provision.ProvisionError, match=said):
            fleet.parse_cameras(text, ["front"])


def test_firmware_files_for_every_device_without_passwords(site, capsys):
    rows = fleet_rows(4)
    firmware = site["tmp"] / "firmware"
    assert main(fleet_args(site, write_csv(site["tmp"] / "f.csv", rows), "--no-progress",
                           "--firmware-dir", str(firmware))) == 0
    assert f"firmware   {firmware}/ID.yaml for each" in capsys.readouterr().out
    assert sorted(p.name for p in firmware.iterdir()) == [f"{row[0]}.yaml" for row in rows]
    for device, *_ in rows:
        text = (firmware / f"{device}.yaml").read_text()
        assert "password_file: /etc/venuewatch/mqtt-password" in text
        assert (site["out"] / device / "mqtt-password").read_text().strip() not in text


def test_defaults_from_the_server_config_and_the_run_is_audited(site, capsys):
    """With --config: the inventory, broker.url and CA come from the server's file, and the run goes on the
    audit chain as one `provision_fleet` entry naming the CSV."""
    from sqlalchemy import select

    from server.app import open_store
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.store import audit_log

    server = site["tmp"] / "etc/server.yaml"
    server.write_text(f"broker:\n  url: mqtts://mqtt.county.lan:8883\n  username: venuewatch-server\n"
                      f"  password_file: mqtt-password\n  ca_file: {site['ca']}\ninventory: inventory.yaml\n"
                      f"data_dir: {site['tmp'] / 'data'}\n")
    rows = [("pi-0400", "venue-taohua-shuwu", "", "")]
    csv = write_csv(site["tmp"] / "f.csv", rows)
    assert main(["provision", "fleet", str(csv), "--config", str(server), "--passwd", str(site["passwd"]),
                 "--acl", str(ACL), "--out", str(site["out"]), "--no-progress"]) == 0
    capsys.readouterr()
    check_provisioned(site, rows)
    assert "url: mqtts://mqtt.county.lan:8883" in (site["out"] / "pi-0400/pi-0400.yaml").read_text()
    config = load_server_config(server)
    engine = open_store(config, load_inventory(config.inventory))
    with engine.connect() as conn:
        entries = conn.execute(select(audit_log.c.action, audit_log.c.target)).all()
    engine.dispose()
    assert ("provision_fleet", str(csv)) in [tuple(e) for e in entries]
