"""Say in plain words why the broker cannot be reached: the installer's first-day question.

paho only reports "connection failed"; on a Pi on 4G the usual causes are a name that does not resolve, a
port that is closed, a certificate that is not trusted (wrong CA file, wrong host name, or a clock still
at the last shutdown so the certificate is "not yet valid").
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime


def why_unreachable(host: str, port: int, tls: ssl.SSLContext | None, timeout: float = 5.0) -> str:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror}): check the Pi's DNS, or add the broker to /etc/hosts"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:.0f} s: link down, firewall, or wrong port"
    except ConnectionRefusedError:
        return f"{host}:{port} refused the connection: is the broker listening on that port?"
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc})"
    with sock:
        if tls is None:
            return f"{host}:{port} answers; the MQTT handshake failed (wrong port for plain MQTT? see the broker log)"
        try:
            sock.settimeout(timeout)
            with tls.wrap_socket(sock, server_hostname=host):
                pass
        except ssl.SSLCertVerificationError as exc:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            return (f"TLS: the broker's certificate is not accepted ({exc.verify_message}): check broker.ca_file, "
                    f"that the URL's host name is in the certificate, and this Pi's clock (it says {now})")
        except (ssl.SSLError, OSError) as exc:
            return f"TLS handshake with {host}:{port} failed ({getattr(exc, 'reason', None) or exc})"
    return f"{host}:{port} accepts TLS; the MQTT handshake failed (see the broker log)"
