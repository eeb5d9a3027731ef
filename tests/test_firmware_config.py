"""firmware_config/pi-os/: Raspberry Pi OS settings and first-boot steps for a venue Pi.

firstboot.sh runs for real against a directory laid out like a Raspberry Pi OS root (`--root`; units are
switched with `systemctl --root`, as on a mounted image), twice, and must leave the same tree both times.
shellcheck checks it where installed (CI: apt-get install -y shellcheck), `bash -n` always. The cloud-init
user-data must be valid YAML with the keys a first boot needs and the same settings firstboot.sh is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PI_OS = REPO / "firmware_config/pi-os"
FIRSTBOOT = PI_OS / "firstboot.sh"
SNIPPET = PI_OS / "config.txt.snippet"

STOCK_CONFIG = """# For more options and information see http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
dtoverlay=vc4-kms-v3d

[all]
"""
STOCK_CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=abcd-02 rootfstype=ext4 fsck.repair=yes "
                 "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot "
                 "systemd.run=/boot/firmware/venuewatch/firstboot.sh "
                 "systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n")
UNIT = "[Unit]\nDescription={name}\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
TIMER = "[Unit]\nDescription={name}\n[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n"


# --- static checks ---------------------------------------------------------------------------------------------

def test_firstboot_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(FIRSTBOOT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert os.access(FIRSTBOOT, os.X_OK)


def test_firstboot_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck); bash -n passed")
    result = subprocess.run([shellcheck, str(FIRSTBOOT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def config_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_config_txt_block_sets_pull_ups_watchdog_and_cameras():
    from server.provision.device import DEFAULT_PINS

    text = SNIPPET.read_text()
    assert text.startswith("# >>> venuewatch") and text.rstrip().endswith("# <<< venuewatch")
    lines = config_lines(text)
    assert lines[0] == "[all]"
    for line in lines[1:]:
        assert "=" in line and " " not in line, f"not a config.txt setting: {line}"
    # the pins `provision device` gives the first four doors, as input with pull-up
    assert f"gpio={','.join(map(str, DEFAULT_PINS[:4]))}=ip,pu" in lines
    assert "dtparam=watchdog=on" in lines
    assert "camera_auto_detect=0" in lines  # the agent reads USB and RTSP cameras, no CSI module


def test_cloud_init_user_data_is_valid_and_agrees_with_firstboot():
    text = (PI_OS / "user-data").read_text()
    assert text.startswith("#cloud-config\n")  # cloud-init ignores user-data without it
    data = yaml.safe_load(text)
    assert data["timezone"] == "Asia/Shanghai"
    assert data["ntp"]["enabled"] is True and data["ntp"]["servers"] and data["ntp"]["pools"] == []
    assert data["ssh_pwauth"] is False and data["package_upgrade"] is False
    for user in data["users"]:
        assert user["lock_passwd"] is True and "passwd" not in user and "plain_text_passwd" not in user
    assert "chpasswd" not in data and "password" not in data
    env_file, = [f for f in data["write_files"] if f["path"].endswith("firstboot.env")]
    settings = dict(line.split("=", 1) for line in env_file["content"].splitlines()
                    if line and not line.startswith("#"))
    assert settings["VENUEWATCH_DEVICE"] == data["hostname"]  # the host name is the device id
    assert settings["NTP_SERVERS"].split() == data["ntp"]["servers"]
    assert settings["TIMEZONE"] == data["timezone"]
    assert data["runcmd"] == [["bash", "/boot/firmware/venuewatch/firstboot.sh", "--env", env_file["path"]]]
    assert data["power_state"]["mode"] == "reboot"
    example = dict(line.split("=", 1) for line in (PI_OS / "firstboot.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(settings) <= set(example)


# --- firstboot.sh on an image ----------------------------------------------------------------------------------

@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A Raspberry Pi OS root as the image comes: stock config.txt and cmdline.txt, swap and apt timers on."""
    if shutil.which("systemctl") is None:
        pytest.fail("systemctl is missing: apt-get install -y systemd (.ci/run does)")
    root = tmp_path / "root"
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware/config.txt").write_text(STOCK_CONFIG)
    (root / "boot/firmware/cmdline.txt").write_text(STOCK_CMDLINE)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost\n127.0.1.1\traspberrypi\n")
    units = root / "lib/systemd/system"
    units.mkdir(parents=True)
    for name in ("dphys-swapfile.service", "bluetooth.service", "hciuart.service", "rsyslog.service",
                 "triggerhappy.service", "systemd-timesyncd.service"):
        (units / name).write_text(UNIT.format(name=name))
    for name in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (units / name).write_text(TIMER.format(name=name))
    (root / "usr/share/systemd").mkdir(parents=True)
    (root / "usr/share/systemd/tmp.mount").write_text(
        "[Unit]\nDescription=Temporary Directory /tmp\n[Mount]\nWhat=tmpfs\nWhere=/tmp\nType=tmpfs\n"
        "[Install]\nWantedBy=local-fs.target\n")
    subprocess.run(["systemctl", f"--root={root}", "--quiet", "enable", "dphys-swapfile.service", "bluetooth.service",
                    "apt-daily.timer", "apt-daily-upgrade.timer", "rsyslog.service"],
                   check=True, capture_output=True, timeout=30)
    return root


def firstboot(root: Path, env: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env_file = tmp_path / "firstboot.env"
    env_file.write_text(env)
    return subprocess.run([str(FIRSTBOOT), "--env", str(env_file), "--root", str(root)], capture_output=True,
                          text=True, timeout=60)


def tree(root: Path) -> dict[str, str]:
    """Every file's content and every symlink's target, by path."""
    result = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            result[key] = "-> " + os.readlink(path)
        elif path.is_file():
            result[key] = path.read_text()
    return result


def enabled(root: Path, unit: str) -> str:
    result = subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True,
                            timeout=30)
    return result.stdout.strip()


ENV = """# settings
VENUEWATCH_DEVICE=pi-0042
NTP_SERVERS=10.20.0.1 10.20.0.2
NTP_FALLBACK=
TIMEZONE=Asia/Shanghai
DOOR_PINS=17,22
BROKER_HOSTS_ENTRY=10.20.30.40 mqtt.venuewatch.lan
UNATTENDED_UPGRADES=off
"""


def test_firstboot_sets_up_a_venue_pi_and_a_second_run_changes_nothing(image, tmp_path):
    result = firstboot(image, ENV, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    first = tree(image)
    again = firstboot(image, ENV, tmp_path)
    assert again.returncode == 0, again.stderr
    assert tree(image) == first, "not idempotent"
    assert "wrote" not in again.stdout and "masked" not in again.stdout

    # host name = device id, broker name resolvable
    assert (image / "etc/hostname").read_text() == "pi-0042\n"
    hosts = (image / "etc/hosts").read_text().splitlines()
    assert "127.0.1.1\tpi-0042" in hosts and "raspberrypi" not in "\n".join(hosts)
    assert hosts.count("10.20.30.40\tmqtt.venuewatch.lan") == 1 and "127.0.0.1\tlocalhost" in hosts
    # time: zone, the county's NTP servers, no public fallback
    assert os.readlink(image / "etc/localtime") == "/usr/share/zoneinfo/Asia/Shanghai"
    assert (image / "etc/timezone").read_text() == "Asia/Shanghai\n"
    timesyncd = (image / "etc/systemd/timesyncd.conf.d/venuewatch.conf").read_text()
    assert "NTP=10.20.0.1 10.20.0.2\n" in timesyncd and "FallbackNTP=\n" in timesyncd
    assert enabled(image, "systemd-timesyncd.service") == "enabled"
    # the SD card: journal in RAM, no syslog copy, no swap file, /tmp in RAM
    journald = (image / "etc/systemd/journald.conf.d/venuewatch.conf").read_text()
    assert "Storage=volatile" in journald and "RuntimeMaxUse=" in journald
    for unit in ("dphys-swapfile.service", "rsyslog.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "bluetooth.service", "hciuart.service", "triggerhappy.service"):
        assert enabled(image, unit) == "masked", unit
    assert enabled(image, "tmp.mount") == "enabled"
    # watchdog fed by systemd, within the BCM watchdog's 15 s
    manager = (image / "etc/systemd/system.conf.d/venuewatch-watchdog.conf").read_text()
    assert "RuntimeWatchdogSec=14s" in manager
    assert 'APT::Periodic::Unattended-Upgrade "0";' in (image / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    # firmware: the stock settings kept, the venuewatch block once at the end with this Pi's door pins
    config = (image / "boot/firmware/config.txt").read_text()
    assert config.startswith(STOCK_CONFIG) and config.count("# >>> venuewatch") == 1
    block = config[config.index("# >>> venuewatch"):]
    assert "gpio=17,22=ip,pu" in config_lines(block) and "dtparam=watchdog=on" in config_lines(block)
    assert config_lines(block) == [line.replace("17,27,22,23", "17,22") for line in config_lines(SNIPPET.read_text())]
    # kernel command line: its own systemd.run gone (runs once), USB cameras never suspended, the rest kept
    cmdline = (image / "boot/firmware/cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and "systemd.run" not in cmdline and "kernel-command-line.target" not in cmdline
    kept = [arg for arg in STOCK_CMDLINE.split() if not arg.startswith("systemd.")]
    assert cmdline.split() == [*kept, "usbcore.autosuspend=-1"]


def test_firstboot_replaces_an_older_venuewatch_block_and_can_allow_security_updates(image, tmp_path):
    assert firstboot(image, ENV, tmp_path).returncode == 0
    changed = ENV.replace("DOOR_PINS=17,22", "DOOR_PINS=27").replace("UNATTENDED_UPGRADES=off",
                                                                      "UNATTENDED_UPGRADES=security")
    result = firstboot(image, changed, tmp_path)
    assert result.returncode == 0, result.stderr
    config = (image / "boot/firmware/config.txt").read_text()
    assert config.count("# >>> venuewatch") == 1 and "gpio=27=ip,pu" in config and "gpio=17,22" not in config
    assert 'APT::Periodic::Unattended-Upgrade "1";' in (image / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    assert "-security" in (image / "etc/apt/apt.conf.d/52venuewatch-unattended-upgrades").read_text()
    assert "needs the unattended-upgrades package" in result.stdout


@pytest.mark.parametrize(("env", "message"), [
    (ENV.replace("VENUEWATCH_DEVICE=pi-0042", "VENUEWATCH_DEVICE=Pi 42"),
     "VENUEWATCH_DEVICE 'Pi 42' must be a device id"),
    (ENV.replace("VENUEWATCH_DEVICE=pi-0042\n", ""), "VENUEWATCH_DEVICE '' must be a device id"),
    (ENV.replace("DOOR_PINS=17,22", "DOOR_PINS=17;rm -rf /"), "DOOR_PINS '17;rm -rf /' must be BCM numbers"),
    (ENV.replace("UNATTENDED_UPGRADES=off", "UNATTENDED_UPGRADES=yes"), "UNATTENDED_UPGRADES must be off or security"),
    (ENV + "SWAP=on\n", "unknown setting 'SWAP'"),
    (ENV.replace("10.20.30.40 mqtt", "10.20.30.40"), "BROKER_HOSTS_ENTRY must be 'ADDRESS NAME'"),
])
def test_firstboot_refuses_bad_settings_and_changes_nothing(image, tmp_path, env, message):
    before = tree(image)
    result = firstboot(image, env, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert tree(image) == before


def test_firstboot_without_settings_says_what_to_copy(image, tmp_path):
    result = subprocess.run([str(FIRSTBOOT), "--env", str(tmp_path / "missing.env"), "--root", str(image)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "copy firstboot.env.example" in result.stderr


def test_the_example_settings_are_accepted(image, tmp_path):
    result = firstboot(image, (PI_OS / "firstboot.env.example").read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (image / "etc/hostname").read_text() == "pi-0001\n"
