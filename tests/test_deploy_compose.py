"""deploy/compose/: the server stack's compose file, its image and its mosquitto set-up.

There is no `docker compose` here (and no Docker daemon), so the structure is checked directly: every service
has an image or a build, a health check and a restart policy; no password is written anywhere; the mounted
config files exist in the repository and sit where the configs that use them look; only the broker and the
console are published. The parts that can run without Docker do run: the server's file is loaded by the
server's own config model, the image's entry point turns secrets into private files, and the compose
broker's main config starts the shipped drop-in with the local mosquitto. `docker compose config -q` runs too
where compose is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_DIR = REPO / "deploy/compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")
SECRET_WORDS = re.compile(r"passw|secret|token|api_?key|credential", re.IGNORECASE)


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE_DIR / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def bind_mounts(service: str) -> list[tuple[str, str, str]]:
    """(source, target, options) of the service's short-syntax volumes."""
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        assert isinstance(volume, str), f"{service}: use the short volume syntax SOURCE:TARGET[:ro]"
        variables = [m.group(0) for m in VARIABLE.finditer(volume)]  # a ${VAR:?message} has colons of its own
        masked = volume
        for i, text in enumerate(variables):
            masked = masked.replace(text, f"@{i}@", 1)
        source, target, *options = masked.split(":")
        for i, text in enumerate(variables):
            source = source.replace(f"@{i}@", text)
        mounts.append((source, target, options[0] if options else ""))
    return mounts


def mount_target(service: str, source: str) -> str:
    return next(target for src, target, _ in bind_mounts(service) if src == source)


# --- structure --------------------------------------------------------------------------------------------

def test_the_stack_is_server_broker_database_and_time_series():
    assert set(SERVICES) == {"server", "mosquitto", "postgres", "victoriametrics"}
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert SERVICES["postgres"]["image"] == "postgres:15"
    assert SERVICES["victoriametrics"]["image"].startswith("victoriametrics/victoria-metrics:")
    assert SERVICES["server"]["build"] == {"context": "../..", "dockerfile": "deploy/compose/Dockerfile"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_a_health_check_and_a_restart_policy(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    assert service.get("restart") in {"always", "unless-stopped"}
    assert "healthcheck" in service, f"{name}: no health check"
    check = service["healthcheck"]
    assert isinstance(check["test"], list) and check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1
    assert {"interval", "timeout", "retries"} <= set(check)
    assert "no-new-privileges:true" in service.get("security_opt", [])
    assert service.get("logging", {}).get("options", {}).get("max-size"), "logs rotate"


def test_image_versions_are_pinned_or_set_in_the_env_file():
    example = env_example()
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: pin the image tag"
        for var, _default in VARIABLE.findall(image):
            assert var in example, f"{name}: {var} is not in env.example"


def test_the_server_starts_after_a_healthy_broker_and_database_but_not_on_the_time_series():
    depends = SERVICES["server"]["depends_on"]
    assert depends == {"mosquitto": {"condition": "service_healthy"},
                       "postgres": {"condition": "service_healthy"}}  # the console never waits for the TSDB


def test_only_the_broker_and_the_console_are_published_and_the_console_on_loopback_only():
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    assert set(published) == {"server", "mosquitto"}
    assert published["server"] == ["127.0.0.1:8080:8080"]  # nginx on the host; never the raw HTTP to the LAN
    assert published["mosquitto"] == ["8883:8883"]  # the Pis, TLS only
    assert "listener 8883" in (REPO / "deploy/mosquitto/venuewatch.conf").read_text()


# --- no passwords -------------------------------------------------------------------------------------------

def walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, str(i)))
    else:
        yield path, node


def test_no_password_is_written_in_the_compose_file_the_env_example_or_the_server_file():
    server_file = yaml.safe_load((COMPOSE_DIR / "server.yaml").read_text())
    for doc_name, doc in (("compose.yaml", COMPOSE), ("server.yaml", server_file)):
        for path, value in walk(doc):
            text = str(value)
            assert not re.search(r"://[^/@\s:]+:[^/@\s]+@", text), f"{doc_name} {path}: credentials in a URL"
            key = path[-1] if path and not path[-1].isdigit() else ""
            if "=" in text and path[-2:-1] == ("environment",):
                key, text = text.split("=", 1)  # list-style environment: KEY=VALUE
            if SECRET_WORDS.search(key):
                allowed = (key.endswith("_FILE") and text.startswith("/run/secrets/")) or \
                          path[0] == "secrets" or key == "password_file" or key in COMPOSE["secrets"] or \
                          path[-2:-1] == ("secrets",)
                assert allowed, f"{doc_name} {'.'.join(path)}: a literal secret; use a compose secret file"
    for key, value in env_example().items():
        assert not SECRET_WORDS.search(key) or value.startswith("/"), f"env.example {key}: a secret, not a path"
    environment = {k for s in SERVICES.values() for k in s.get("environment", {})}
    assert "POSTGRES_PASSWORD" not in environment and "POSTGRES_HOST_AUTH_METHOD" not in environment


def test_passwords_come_from_secret_files_the_containers_read():
    secrets = COMPOSE["secrets"]
    assert set(secrets) == {"postgres_password", "mqtt_password"}
    example = env_example()
    for name, secret in secrets.items():
        (var, _), = VARIABLE.findall(secret["file"])
        assert secret["file"].endswith(f"/{name}") and var in example
        assert ":?" in secret["file"], "no default folder: compose refuses to start without the setting"
    postgres = SERVICES["postgres"]
    assert postgres["secrets"] == ["postgres_password"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert set(SERVICES["server"]["secrets"]) == {"postgres_password", "mqtt_password"}
    entrypoint = (COMPOSE_DIR / "entrypoint.sh").read_text()
    for name in secrets:
        assert f'"$secrets/{name}"' in entrypoint


# --- files: mounted where the configs look for them ---------------------------------------------------------

def test_every_mount_exists_in_the_repository_or_is_a_setting_or_a_named_volume():
    example = env_example()
    for name in SERVICES:
        for source, target, options in bind_mounts(name):
            assert target.startswith("/"), f"{name}: {target}"
            if "/" not in source and "$" not in source and not source.startswith("."):
                assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"
                continue
            assert options == "ro", f"{name}: {source} is configuration, mount it read-only"
            variables = VARIABLE.findall(source)
            if variables:
                for var, message in variables:
                    assert var in example, f"{name}: {var} is not in env.example"
                    assert message, f"{name}: {source}: use ${{{var}:?message}} so compose refuses to run without it"
            else:
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist in the repository"


def test_the_broker_runs_the_shipped_config_and_acl_with_every_path_they_name_mounted():
    mosquitto = SERVICES["mosquitto"]
    targets = {target for _, target, _ in bind_mounts("mosquitto")}
    main = (COMPOSE_DIR / "mosquitto.conf").read_text()
    shipped = (REPO / "deploy/mosquitto/venuewatch.conf").read_text()
    assert mosquitto["command"] == ["mosquitto", "-c", mount_target("mosquitto", "./mosquitto.conf")]
    include_dir = re.search(r"^include_dir (\S+)", main, re.M).group(1)
    assert mount_target("mosquitto", "../mosquitto/venuewatch.conf") == f"{include_dir}/venuewatch.conf"
    assert mount_target("mosquitto", "../mosquitto/acl") == re.search(r"^acl_file (\S+)", shipped, re.M).group(1)
    assert re.search(r"^password_file (\S+)", shipped, re.M).group(1) in targets
    for key in ("cafile", "certfile", "keyfile"):
        path = re.search(rf"^{key} (\S+)", shipped, re.M).group(1)
        assert any(path.startswith(t + "/") for t in targets), f"{key} {path} is not in a mounted folder"
    persistence = re.search(r"^persistence_location (\S+)", main, re.M).group(1)
    assert "mosquitto-data:" + persistence.rstrip("/") in mosquitto["volumes"]
    # The server reaches the broker under the name in its certificate.
    aliases = mosquitto["networks"]["default"]["aliases"]
    server_file = yaml.safe_load((COMPOSE_DIR / "server.yaml").read_text())
    assert urlsplit(server_file["broker"]["url"]).hostname in aliases


def test_the_server_file_is_valid_and_points_at_the_stack():
    from server.config import load_server_config

    config = load_server_config(COMPOSE_DIR / "server.yaml")  # the server's own model: unknown keys refused
    etc = mount_target("server", "${VENUEWATCH_ETC:?set VENUEWATCH_ETC in .env (see env.example)}")
    assert etc == "/etc/venuewatch"
    assert SERVICES["server"].get("command") is None  # the image's CMD: --config /etc/venuewatch/server.yaml
    assert 'CMD ["venuewatch", "server", "--config", "/etc/venuewatch/server.yaml"]' in \
        (COMPOSE_DIR / "Dockerfile").read_text()
    assert str(config.inventory).startswith(etc + "/") and str(config.broker.ca_file).startswith(etc + "/")
    assert str(config.broker.password_file) == "/run/venuewatch/mqtt-password"  # written by the entry point
    url = urlsplit(config.broker.url)
    assert (url.scheme, url.port) == ("mqtts", 8883)
    database = urlsplit(config.database_url)
    postgres = SERVICES["postgres"]["environment"]
    assert database.hostname == "postgres" and database.password is None
    assert database.username == postgres["POSTGRES_USER"] and database.path == "/" + postgres["POSTGRES_DB"]
    assert SERVICES["server"]["environment"]["PGPASSFILE"] == "/run/venuewatch/pgpass"
    assert config.http.host == "0.0.0.0" and SERVICES["server"]["ports"] == [f"127.0.0.1:8080:{config.http.port}"]
    assert "server-data:" + str(config.data_dir) in SERVICES["server"]["volumes"]
    assert config.http.secure_cookies and config.http.trusted_proxies == 1  # nginx on the host


def test_the_image_is_python_slim_with_the_server_extra_and_copies_only_what_exists():
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "pip install --no-cache-dir '.[server]'" in dockerfile
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources = line.split()[1:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository (context ../..)"
                assert source in kept, f"COPY {source}: excluded by Dockerfile.dockerignore"
    assert "ENTRYPOINT [\"venuewatch-entrypoint\"]" in dockerfile
    assert re.search(r"^COPY deploy/compose/entrypoint.sh /usr/local/bin/venuewatch-entrypoint$", dockerfile, re.M)
    assert os.access(COMPOSE_DIR / "entrypoint.sh", os.X_OK)


# --- what runs here ------------------------------------------------------------------------------------------

def test_the_entry_point_is_valid_posix_sh():
    result = subprocess.run(["sh", "-n", str(COMPOSE_DIR / "entrypoint.sh")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr


def test_the_entry_point_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck); sh -n passed")
    result = subprocess.run([shellcheck, str(COMPOSE_DIR / "entrypoint.sh")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_entry_point_turns_the_secrets_into_private_files_and_runs_the_command(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mqtt_password").write_text("mqtt pass word\n")
    (secrets / "postgres_password").write_text("p:a\\ss\nsecond line ignored\n")
    run = tmp_path / "run"
    import getpass

    env = {**os.environ, "VENUEWATCH_SECRETS": str(secrets), "VENUEWATCH_RUN": str(run),
           "VENUEWATCH_DATA": str(tmp_path / "data"), "VENUEWATCH_USER": getpass.getuser()}
    result = subprocess.run([str(COMPOSE_DIR / "entrypoint.sh"), "sh", "-c", 'echo "ran as $(id -un)"'],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ran as {getpass.getuser()}\n"
    assert (run / "mqtt-password").read_text() == "mqtt pass word\n"
    assert (run / "pgpass").read_text() == "*:*:*:*:p\\:a\\\\ss\n"  # libpq's escapes for ':' and '\'
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for name in ("mqtt-password", "pgpass"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o600  # libpq ignores a pgpass group or others can read
    assert "pass" not in result.stdout + result.stderr


def test_the_entry_point_says_which_secret_is_missing(tmp_path):
    env = {**os.environ, "VENUEWATCH_SECRETS": str(tmp_path / "none"), "VENUEWATCH_RUN": str(tmp_path / "run"),
           "VENUEWATCH_DATA": str(tmp_path / "data"), "VENUEWATCH_USER": __import__("getpass").getuser()}
    result = subprocess.run([str(COMPOSE_DIR / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0  # the server then says which file it cannot read
    assert "no secret mqtt_password" in result.stderr


def test_the_compose_broker_config_runs_the_shipped_drop_in(tmp_path):
    """The container's file tree, rebuilt under tmp_path and run with the local mosquitto: the main config
    includes the shipped drop-in unchanged, it listens with TLS, logs in the server and refuses anonymous."""
    import paho.mqtt.client as mqtt

    from tests.services import free_port, wait_port

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("mosquitto is missing: apt-get install -y mosquitto (.ci/run does)")
    root = tmp_path / "container"
    port = free_port()

    def place(text: str, target: str) -> None:
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (text.replace("/etc/mosquitto/", f"{root}/etc/mosquitto/")
                .replace("/mosquitto/data/", f"{root}/mosquitto/data/"))
        path.write_text(text.replace("listener 8883", f"listener {port} 127.0.0.1"))

    for source, target, _ in bind_mounts("mosquitto"):
        if source.startswith("."):
            place((COMPOSE_DIR / source).read_text(), target)
    (root / "mosquitto/data").mkdir(parents=True)
    certs = root / "etc/mosquitto/certs"
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt"),
                    "-subj", "/CN=mqtt.venuewatch.lan",
                    "-addext", "subjectAltName=DNS:mqtt.venuewatch.lan,IP:127.0.0.1"], check=True, capture_output=True)
    shutil.copy(certs / "server.crt", certs / "ca.crt")
    passwd = root / "etc/mosquitto/venuewatch.passwd"
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-c", "-b", str(passwd),
                    "venuewatch-server", "compose test"], check=True, capture_output=True)
    main = root / "etc/mosquitto/mosquitto.conf"
    if os.geteuid() == 0:  # as root mosquitto drops to its user, which cannot read pytest's private temp dirs
        main.write_text("user root\n" + main.read_text())
    process = subprocess.Popen([binary, "-c", str(main)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        try:
            wait_port(port)
        except RuntimeError:
            process.kill()
            pytest.fail("mosquitto did not start with the compose config:\n" + process.communicate()[0])

        def connects(user: str | None, password: str | None) -> bool:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"compose-{time.monotonic_ns()}")
            if user:
                client.username_pw_set(user, password)
            client.tls_set(ca_certs=str(certs / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
            answered, accepted = threading.Event(), []
            client.on_connect = lambda c, u, f, reason, p: (accepted.append(not reason.is_failure), answered.set())
            client.connect("127.0.0.1", port, keepalive=10)
            client.loop_start()
            try:
                assert answered.wait(5), "no CONNACK"
                return accepted == [True]
            finally:
                client.loop_stop()
                client.disconnect()

        assert connects("venuewatch-server", "compose test")
        assert not connects(None, None)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "Error" not in output, output


def test_docker_compose_accepts_the_file_where_it_is_installed(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        timeout=30).returncode != 0:
        pytest.skip("docker compose is not installed here; the structure is checked by the tests above")
    for folder in ("etc", "secrets", "mosquitto/certs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "secrets/postgres_password").write_text("x\n")
    (tmp_path / "secrets/mqtt_password").write_text("x\n")
    (tmp_path / "mosquitto/venuewatch.passwd").write_text("")
    env = {**os.environ, "VENUEWATCH_ETC": str(tmp_path / "etc"), "VENUEWATCH_SECRETS": str(tmp_path / "secrets"),
           "VENUEWATCH_BROKER_DIR": str(tmp_path / "mosquitto")}
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE_DIR / "compose.yaml"), "config", "-q"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
