#!/bin/sh
# Entry point of the venuewatch server image (deploy/compose/Dockerfile).
#
# Compose hands the secrets over as files in /run/secrets/ (mqtt_password: the server's MQTT password;
# postgres_password: the database password), owned by whoever owns them on the host. This script, still
# root, copies them into files only the venuewatch user can read (mode 0600 in /run/venuewatch), makes
# a libpq password file for PostgreSQL from the database password (PGPASSFILE), and then runs the
# command as venuewatch (uid/gid of the image's user), never as root. No secret is ever in an environment
# variable, the compose file or the image.
#
# Outside a container (the tests) VENUEWATCH_SECRETS, VENUEWATCH_RUN, VENUEWATCH_DATA and VENUEWATCH_USER
# point elsewhere; without root the command runs as the current user.
set -eu

secrets=${VENUEWATCH_SECRETS:-/run/secrets}
run=${VENUEWATCH_RUN:-/run/venuewatch}
user=${VENUEWATCH_USER:-venuewatch}
data=${VENUEWATCH_DATA:-/var/lib/venuewatch}

umask 077
mkdir -p "$run"
chmod 0700 "$run"

# mqtt_password -> $run/mqtt-password (the server file's broker.password_file): the first line only.
if [ -f "$secrets/mqtt_password" ]; then
    head -n 1 "$secrets/mqtt_password" > "$run/mqtt-password"
else
    echo "venuewatch-entrypoint: no secret mqtt_password in $secrets (see deploy/compose/env.example)" >&2
fi

# postgres_password -> $run/pgpass, one libpq line for any host, port, database and user; ':' and '\'
# in the password are escaped as libpq wants.
if [ -f "$secrets/postgres_password" ]; then
    password=$(head -n 1 "$secrets/postgres_password")
    escaped=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
    printf '*:*:*:*:%s\n' "$escaped" > "$run/pgpass"
    unset password escaped
fi

if [ "$(id -u)" = 0 ]; then
    chown -R "$user:$user" "$run"
    # data_dir (secret key, reports): a volume made by hand or restored from a backup may be root's.
    if [ -d "$data" ]; then
        chown "$user:$user" "$data"
    fi
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
fi
exec "$@"
