#!/bin/bash
# venuewatch first-boot settings for a venue Pi (Raspberry Pi OS Lite, Bookworm). firmware_config/README.md.
#
#   sudo bash /boot/firmware/venuewatch/firstboot.sh [--env FILE] [--root DIR] && sudo reboot
#
# Reads firstboot.env (next to this script unless --env; see firstboot.env.example) and sets, idempotently:
# the host name (= device id), time zone, the county's NTP servers, a journal in RAM (the SD card wears),
# no swap on the card, /tmp in RAM, systemd feeding the hardware watchdog, no automatic package updates (or
# security updates only), no Bluetooth or input-hotkey daemons, the venuewatch block of config.txt (door
# pins' pull-ups, watchdog, no camera-module drivers), no USB autosuspend (USB cameras), and the broker's
# name in /etc/hosts if DNS does not know it. Everything takes effect at the next boot: reboot afterwards.
#
# --root DIR works on a mounted image (or a test's directory) instead of the running system: units are
# enabled and disabled with `systemctl --root`, nothing is started or stopped.
# Also usable from the kernel command line (systemd.run=…/firstboot.sh): it then removes its own
# systemd.run= arguments from cmdline.txt, so it runs once.
set -euo pipefail

say() { printf 'venuewatch-firstboot: %s\n' "$*"; }
die() { printf 'venuewatch-firstboot: %s\n' "$*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_file="$here/firstboot.env"
root=/
while [ $# -gt 0 ]; do
    case $1 in
        --env) env_file=${2:?--env needs a file}; shift 2 ;;
        --root) root=${2:?--root needs a folder}; shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument $1 (--env FILE, --root DIR)" ;;
    esac
done
root=${root%/}
[ -d "$root/etc" ] || die "--root $root: no etc/ in it"
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die "run it as root (sudo)"
fi
live=false
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    live=true
fi
command -v systemctl >/dev/null || die "systemctl is missing"

# --- settings: KEY=value lines, parsed (never sourced: the file sits on the FAT boot partition) -----------
VENUEWATCH_DEVICE=
NTP_SERVERS=
NTP_FALLBACK=
TIMEZONE=Asia/Shanghai
DOOR_PINS=
BROKER_HOSTS_ENTRY=
UNATTENDED_UPGRADES=off
[ -f "$env_file" ] || die "no settings file $env_file (copy firstboot.env.example)"
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    case $line in ''|'#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    case $key in
        VENUEWATCH_DEVICE) VENUEWATCH_DEVICE=$value ;;
        NTP_SERVERS) NTP_SERVERS=$value ;;
        NTP_FALLBACK) NTP_FALLBACK=$value ;;
        TIMEZONE) TIMEZONE=$value ;;
        DOOR_PINS) DOOR_PINS=$value ;;
        BROKER_HOSTS_ENTRY) BROKER_HOSTS_ENTRY=$value ;;
        UNATTENDED_UPGRADES) UNATTENDED_UPGRADES=$value ;;
        *) die "$env_file: unknown setting '$key'" ;;
    esac
done < "$env_file"

[[ $VENUEWATCH_DEVICE =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] \
    || die "$env_file: VENUEWATCH_DEVICE '$VENUEWATCH_DEVICE' must be a device id (lowercase letters, digits, - and _)"
[[ $TIMEZONE =~ ^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$ ]] || die "$env_file: TIMEZONE '$TIMEZONE' is not a zone name"
[ -z "$DOOR_PINS" ] || [[ $DOOR_PINS =~ ^[0-9]{1,2}(,[0-9]{1,2})*$ ]] \
    || die "$env_file: DOOR_PINS '$DOOR_PINS' must be BCM numbers separated by commas, e.g. 17,27"
case $UNATTENDED_UPGRADES in off|security) ;; *) die "$env_file: UNATTENDED_UPGRADES must be off or security" ;; esac
if [ -n "$BROKER_HOSTS_ENTRY" ] && ! [[ $BROKER_HOSTS_ENTRY =~ ^[0-9a-fA-F.:]+[[:space:]]+[A-Za-z0-9.-]+$ ]]; then
    die "$env_file: BROKER_HOSTS_ENTRY must be 'ADDRESS NAME'"
fi

boot=$root/boot/firmware
[ -d "$boot" ] || boot=$root/boot   # images before Bookworm

# Write a file only when its content changes (keeps timestamps, says what changed).
put() {
    local path=$root$1 content=$2
    mkdir -p "$(dirname "$path")"
    if [ ! -f "$path" ] || [ "$(cat "$path")" != "$content" ]; then
        printf '%s\n' "$content" > "$path"
        say "wrote $1"
    fi
}

unit_exists() {
    local dir
    for dir in etc/systemd/system lib/systemd/system usr/lib/systemd/system; do
        [ -e "$root/$dir/$1" ] && return 0
    done
    return 1
}

sysctl_root() { systemctl --root="${root:-/}" --quiet "$@"; }

# Never started again: disabled and masked (a package update cannot bring it back).
turn_off() {
    local unit
    for unit in "$@"; do
        if unit_exists "$unit" && [ "$(readlink "$root/etc/systemd/system/$unit" || true)" != /dev/null ]; then
            sysctl_root disable "$unit" || true
            sysctl_root mask "$unit"
            say "masked $unit"
        fi
    done
}

# --- host name = device id -------------------------------------------------------------------------------
put /etc/hostname "$VENUEWATCH_DEVICE"
hosts=$root/etc/hosts
touch "$hosts"
if grep -q '^127\.0\.1\.1[[:space:]]' "$hosts"; then
    sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$VENUEWATCH_DEVICE/" "$hosts"
else
    printf '127.0.1.1\t%s\n' "$VENUEWATCH_DEVICE" >> "$hosts"
fi
if $live; then
    hostname "$VENUEWATCH_DEVICE"
fi

# --- the broker's name, if DNS does not know it ------------------------------------------------------------
if [ -n "$BROKER_HOSTS_ENTRY" ]; then
    read -r broker_address broker_name <<< "$BROKER_HOSTS_ENTRY"
    if ! grep -qxF "$(printf '%s\t%s' "$broker_address" "$broker_name")" "$hosts"; then
        sed -i "/[[:space:]]${broker_name//./\\.}\$/d" "$hosts"   # an older address for the name
        printf '%s\t%s\n' "$broker_address" "$broker_name" >> "$hosts"
        say "broker $broker_name at $broker_address in /etc/hosts"
    fi
fi

# --- time: zone and the county's NTP servers (no RTC on a Pi: NTP is the only clock) ------------------------
ln -sfn "/usr/share/zoneinfo/$TIMEZONE" "$root/etc/localtime"
put /etc/timezone "$TIMEZONE"
if [ -n "$NTP_SERVERS" ]; then
    put /etc/systemd/timesyncd.conf.d/venuewatch.conf "# venuewatch firstboot.sh: the county intranet's NTP servers
[Time]
NTP=$NTP_SERVERS
FallbackNTP=$NTP_FALLBACK"
else
    say "warning: no NTP_SERVERS: the Debian pool is used, which an intranet cannot reach"
fi
if unit_exists systemd-timesyncd.service; then
    sysctl_root unmask systemd-timesyncd.service || true
    sysctl_root enable systemd-timesyncd.service
fi

# --- the SD card: journal in RAM, no swap file, /tmp in RAM --------------------------------------------------
put /etc/systemd/journald.conf.d/venuewatch.conf "# venuewatch firstboot.sh: the journal lives in RAM (/run/log/journal), not on the SD card.
# The agent's events are in its own journal.db until the server has them; these logs are for diagnosis
# (journalctl -u venuewatch-agent) and are gone after a reboot.
[Journal]
Storage=volatile
RuntimeMaxUse=32M
RuntimeMaxFileSize=8M
ForwardToSyslog=no"
# rsyslog would write everything a second time, to /var/log on the card.
turn_off rsyslog.service
turn_off dphys-swapfile.service
if $live && command -v dphys-swapfile >/dev/null; then
    dphys-swapfile swapoff || true
    dphys-swapfile uninstall || true
fi
if [ -f "$root/usr/share/systemd/tmp.mount" ] && ! unit_exists tmp.mount; then
    cp "$root/usr/share/systemd/tmp.mount" "$root/etc/systemd/system/tmp.mount"
fi
if unit_exists tmp.mount; then
    sysctl_root enable tmp.mount
fi

# --- watchdogs: systemd feeds the hardware watchdog (config.txt: dtparam=watchdog=on) -----------------------
# The BCM watchdog's longest timeout is about 15 s. The agent's own watchdog is in its unit (WatchdogSec=).
put /etc/systemd/system.conf.d/venuewatch-watchdog.conf "# venuewatch firstboot.sh: a hung Pi reboots by itself.
[Manager]
RuntimeWatchdogSec=14s
RebootWatchdogSec=2min"

# --- package updates: none behind the county's back ----------------------------------------------------------
if [ "$UNATTENDED_UPGRADES" = off ]; then
    put /etc/apt/apt.conf.d/20auto-upgrades "// venuewatch firstboot.sh: updates are rolled out by the county (Ansible), tested first.
APT::Periodic::Update-Package-Lists \"0\";
APT::Periodic::Unattended-Upgrade \"0\";"
    rm -f "$root/etc/apt/apt.conf.d/52venuewatch-unattended-upgrades"
    turn_off apt-daily.timer apt-daily-upgrade.timer
else
    put /etc/apt/apt.conf.d/20auto-upgrades "// venuewatch firstboot.sh: Debian security updates only (unattended-upgrades).
APT::Periodic::Update-Package-Lists \"1\";
APT::Periodic::Unattended-Upgrade \"1\";"
    put /etc/apt/apt.conf.d/52venuewatch-unattended-upgrades "// venuewatch firstboot.sh: security updates only, and never a reboot.
Unattended-Upgrade::Origins-Pattern { \"origin=Debian,codename=\${distro_codename}-security,label=Debian-Security\"; };
Unattended-Upgrade::Automatic-Reboot \"false\";"
    [ -x "$root/usr/bin/unattended-upgrade" ] || say "warning: UNATTENDED_UPGRADES=security needs the unattended-upgrades package"
fi

# --- services a venue Pi does not need ------------------------------------------------------------------------
# (ModemManager stays: the agent reads the 4G signal with mmcli.)
turn_off bluetooth.service hciuart.service triggerhappy.service triggerhappy.socket

# --- firmware: config.txt block, kernel command line ---------------------------------------------------------
config=$boot/config.txt
snippet=$(cat "$here/config.txt.snippet")
if [ -n "$DOOR_PINS" ]; then
    snippet=$(printf '%s\n' "$snippet" | sed "s/^gpio=[0-9,]*=ip,pu\$/gpio=$DOOR_PINS=ip,pu/")
fi
touch "$config"
# Everything but an earlier venuewatch block, without trailing blank lines; then the block.
current=$(sed '/^# >>> venuewatch/,/^# <<< venuewatch/d' "$config" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}')
if [ -n "$current" ]; then
    new=$(printf '%s\n\n%s' "$current" "$snippet")
else
    new=$snippet
fi
if [ "$(cat "$config")" != "$new" ]; then
    printf '%s\n' "$new" > "$config"
    say "wrote ${config#"$root"} (venuewatch block)"
fi

cmdline=$boot/cmdline.txt
if [ -f "$cmdline" ]; then
    line=$(head -n 1 "$cmdline")
    # This script's own systemd.run (when started from the kernel command line), so it runs once.
    new_line=$(printf '%s\n' "$line" | sed -E 's#[[:space:]]*systemd\.run(_success_action|_failure_action)?=[^[:space:]]*##g; s#[[:space:]]*systemd\.unit=kernel-command-line\.target##')
    # USB cameras: no autosuspend (a suspended UVC camera drops its stream).
    case " $new_line " in *" usbcore.autosuspend="*) ;; *) new_line="$new_line usbcore.autosuspend=-1" ;; esac
    if [ "$new_line" != "$line" ]; then
        printf '%s\n' "$new_line" > "$cmdline"
        say "wrote ${cmdline#"$root"}"
    fi
fi

put /var/lib/venuewatch-firstboot/done "device=$VENUEWATCH_DEVICE timezone=$TIMEZONE ntp=$NTP_SERVERS upgrades=$UNATTENDED_UPGRADES"
say "done for $VENUEWATCH_DEVICE; reboot to apply"
