"""`provision ca`: the county CA and the broker certificate (cryptography is imported only when used)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path
from typing import Any

from server.provision.errors import ProvisionError
from server.provision.files import write_new_file

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
SERVER_CERT_DAYS = 825
CA_MIN_DAYS = 3650
_DNS_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.I)


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
