"""Senders: one delivery attempt of a rendered message to one channel, success or a DeliveryError.

The robot URLs carry their access token, so neither URLs nor secrets appear in errors or logs: only the
channel name does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests

from server.notify.config import ChannelSettings

WECOM_MAX_BYTES = 4096  # WeCom rejects markdown content longer than this (UTF-8 bytes)
_JSON = {"Content-Type": "application/json; charset=utf-8"}

# Robot error codes a later attempt can fix by itself.
_DINGTALK_RETRY = {-1: "DingTalk is busy",
                   130101: "sending too fast: DingTalk allows 20 messages a minute per robot and then blocks "
                           "it for 10 minutes"}
_DINGTALK_CONFIG = {310000: "rejected by the robot's security settings (安全设置): check secret_file holds the "
                            "robot's 加签 secret, that messages contain a configured keyword, or that this "
                            "server's address is on the IP allow-list"}
_WECOM_RETRY = {-1: "WeCom is busy", 45009: "sending too fast: WeCom allows 20 messages a minute per robot"}


class DeliveryError(Exception):
    """One attempt failed. `retryable`: a later attempt may succeed without anyone changing anything."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def send(channel: ChannelSettings, message: dict[str, Any], recipient: str) -> None:
    """Deliver `message` ({"title","text"}, plus "alert" and "reason" for webhooks) or raise DeliveryError."""
    if channel.type == "dingtalk":
        _dingtalk(channel, message)
    elif channel.type == "wecom":
        _wecom(channel, message)
    elif channel.type == "webhook":
        _webhook(channel, message)
    else:
        _email(channel, message, recipient)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")); URL-encoded by requests."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _dingtalk(channel: ChannelSettings, message: dict[str, Any]) -> None:
    params = None
    if channel.secret_file is not None:
        secret = _read_secret(channel, channel.secret_file, "secret_file", "the robot's 加签 secret (SEC…)")
        # DingTalk rejects a timestamp more than an hour from its own clock: use the real wall clock.
        timestamp = int(time.time() * 1000)
        params = {"timestamp": str(timestamp), "sign": dingtalk_sign(secret, timestamp)}
    body = {"msgtype": "markdown", "markdown": {"title": message["title"], "text": message["text"]}}
    errcode, errmsg = _robot_post(channel, body, params)
    if errcode == 0:
        return
    if errcode in _DINGTALK_RETRY:
        raise DeliveryError(f"dingtalk channel {channel.name!r}: errcode {errcode} ({errmsg}): "
                            f"{_DINGTALK_RETRY[errcode]}; will retry", retryable=True)
    if errcode in _DINGTALK_CONFIG:
        # Retried anyway: someone may fix the robot's settings without touching our config.
        raise DeliveryError(f"dingtalk channel {channel.name!r}: errcode {errcode} ({errmsg}): "
                            f"{_DINGTALK_CONFIG[errcode]}; will keep retrying", retryable=True)
    raise DeliveryError(f"dingtalk channel {channel.name!r}: errcode {errcode} ({errmsg}): check the robot "
                        f"still exists and its access_token in url", retryable=False)


def _wecom(channel: ChannelSettings, message: dict[str, Any]) -> None:
    content = _truncate_utf8(f"{message['title']}\n{message['text']}", WECOM_MAX_BYTES)
    errcode, errmsg = _robot_post(channel, {"msgtype": "markdown", "markdown": {"content": content}}, None)
    if errcode == 0:
        return
    if errcode in _WECOM_RETRY:
        raise DeliveryError(f"wecom channel {channel.name!r}: errcode {errcode} ({errmsg}): "
                            f"{_WECOM_RETRY[errcode]}; will retry", retryable=True)
    raise DeliveryError(f"wecom channel {channel.name!r}: errcode {errcode} ({errmsg}): check the robot is "
                        f"still in its group and the key in url", retryable=False)


def _webhook(channel: ChannelSettings, message: dict[str, Any]) -> None:
    body = {"title": message["title"], "text": message["text"], "alert": message.get("alert"),
            "reason": message.get("reason")}
    _post(channel, body, None)


def _robot_post(channel: ChannelSettings, body: dict[str, Any], params: dict[str, str] | None) -> tuple[int, str]:
    """POST to a group robot; its answer is HTTP 200 with {"errcode", "errmsg"} whether it worked or not."""
    response = _post(channel, body, params)
    try:
        answer = response.json()
        return int(answer["errcode"]), str(answer.get("errmsg", ""))[:200]
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(f"{channel.type} channel {channel.name!r}: the answer is not the robot's JSON "
                            f"(HTTP {response.status_code}, {response.text[:100]!r}): check url points at the "
                            f"robot or a gateway that passes its answer through", retryable=True) from None


def _post(channel: ChannelSettings, body: dict[str, Any], params: dict[str, str] | None) -> requests.Response:
    assert channel.url is not None  # guaranteed by ChannelSettings for HTTP channels
    where = f"{channel.type} channel {channel.name!r}"
    try:
        # Redirects are not followed: requests would turn the POST into a GET and lose the message.
        # UTF-8 rather than \u escapes: DingTalk's documentation asks for a UTF-8 body.
        response = requests.post(channel.url, data=json.dumps(body, ensure_ascii=False).encode(), params=params,
                                 headers=_JSON, timeout=channel.timeout_s, allow_redirects=False)
    except requests.Timeout:
        raise DeliveryError(f"{where}: no answer within timeout_s {channel.timeout_s:g}", retryable=True) from None
    except requests.RequestException as exc:
        # The exception text would contain the URL (and its token): name the kind of failure only.
        raise DeliveryError(f"{where}: cannot connect ({type(exc).__name__}); check the network path to the "
                            f"robot or gateway", retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    retryable = status >= 500 or status in (408, 429)
    hint = "will retry" if retryable else ("put the final URL in url" if 300 <= status < 400
                                           else "check url and the receiver's logs")
    raise DeliveryError(f"{where}: HTTP {status} ({response.reason}); {hint}", retryable=retryable)


def _email(channel: ChannelSettings, message: dict[str, Any], recipient: str) -> None:
    smtp = channel.smtp
    assert smtp is not None  # guaranteed by ChannelSettings for email channels
    where = f"email channel {channel.name!r}"
    if not recipient:
        raise DeliveryError(f"{where}: no recipient address (give the duty person an email in the roster)",
                            retryable=False)
    mail = EmailMessage()
    mail["Subject"] = message["title"]
    mail["From"] = smtp.sender
    mail["To"] = recipient
    mail.set_content(message["text"], charset="utf-8")
    password = (_read_secret(channel, smtp.password_file, "smtp.password_file", "the SMTP password")
                if smtp.password_file else None)
    context = ssl.create_default_context()
    try:
        if smtp.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.effective_port, timeout=channel.timeout_s,
                                                    context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=channel.timeout_s)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username and password is not None:
                client.login(smtp.username, password)
            client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where}: login refused ({exc.smtp_code}); check smtp.username and "
                            f"smtp.password_file", retryable=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError(f"{where}: the server refused recipient {recipient!r}; check the address in the "
                            f"roster", retryable=False) from None
    except smtplib.SMTPResponseException as exc:
        # 4xx is "try again later" in SMTP; 5xx is permanent until someone changes something.
        raise DeliveryError(f"{where}: SMTP {exc.smtp_code} {_text(exc.smtp_error)}",
                            retryable=exc.smtp_code < 500) from None
    except ssl.SSLCertVerificationError:
        raise DeliveryError(f"{where}: the server's certificate is not trusted; check smtp.host is the name on "
                            f"its certificate", retryable=False) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{where}: the server does not offer STARTTLS or AUTH; check smtp.security",
                            retryable=False) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: cannot reach {smtp.host}:{smtp.effective_port} ({type(exc).__name__}: "
                            f"{exc}); will retry", retryable=True) from None


def _read_secret(channel: ChannelSettings, path: Path, key: str, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(f"{channel.type} channel {channel.name!r}: {key}: cannot read {path} "
                            f"({exc.strerror}); create it holding {what}", retryable=False) from None


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    # Cut on a byte boundary, then drop a half-cut character rather than send invalid UTF-8.
    return data[: limit - len("…".encode())].decode(errors="ignore") + "…"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
