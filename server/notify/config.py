"""Notification settings (`notify:` in the server config). Every key is described in docs/notifications.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ROBOT_EXAMPLES = {
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=…",
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…",
    "webhook": "https://host/path",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSettings(_Strict):
    host: str = Field(min_length=1, description="SMTP server host name, e.g. smtp.example.gov.cn")
    port: int | None = Field(None, ge=1, le=65535,
                             description="SMTP port; default 465 for ssl, 587 for starttls, 25 for none")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="starttls: upgrade a plain connection; ssl: TLS from the start; none: plain text")
    username: str | None = Field(None, description="SMTP login; leave out for a relay that needs none")
    password_file: Path | None = Field(None, description="file holding the SMTP password (mode 0600), "
                                       "read at send time; relative to the server config file")
    sender: str = Field(min_length=3, description="From address, e.g. venuewatch@example.gov.cn")

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"{value!r} is not an e-mail address (write e.g. venuewatch@example.gov.cn)")
        return value

    @model_validator(mode="after")
    def _login(self) -> SmtpSettings:
        if self.username and self.password_file is None:
            raise ValueError("password_file: username is set but no password_file (add the file holding "
                             "the SMTP password, or remove username)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class ChannelSettings(_Strict):
    name: str = Field(description="channel id used by the roster and the outbox, e.g. county-duty-dingtalk")
    type: Literal["dingtalk", "wecom", "email", "webhook"] = Field(description="how messages are delivered")
    url: str | None = Field(None, description="dingtalk/wecom/webhook: the full URL including access_token or "
                            "key (a gateway URL works too); a secret: never logged")
    secret_file: Path | None = Field(None, description="dingtalk: file holding the robot's 加签 secret (SEC…), "
                                     "read at send time; relative to the server config file")
    smtp: SmtpSettings | None = Field(None, description="email: the SMTP server to send through")
    lang: Literal["zh", "en"] = Field("zh", description="message language")
    timeout_s: float = Field(10, gt=0, le=120, description="give up one delivery attempt after this long")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a channel id (use lowercase letters, digits, - and _, "
                             f"e.g. county-duty)")
        return value

    @model_validator(mode="after")
    def _per_type(self) -> ChannelSettings:
        if self.type == "email":
            if self.smtp is None:
                raise ValueError("smtp: an email channel needs an smtp: block with at least host and sender")
            if self.url is not None:
                raise ValueError("url: an email channel does not use url (remove it; set smtp.host instead)")
        else:
            if self.smtp is not None:
                raise ValueError(f"smtp: only email channels use it (remove it from this {self.type} channel)")
            parts = urlsplit(self.url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"url: a {self.type} channel needs its full http(s) URL "
                                 f"(write e.g. {_ROBOT_EXAMPLES[self.type]})")
        if self.secret_file is not None and self.type != "dingtalk":
            raise ValueError(f"secret_file: only dingtalk channels sign requests (remove it from this "
                             f"{self.type} channel)")
        return self


class NotifySettings(_Strict):
    channels: list[ChannelSettings] = Field(default_factory=list, description="where notifications go")
    retry_initial_s: float = Field(10, gt=0, le=3600, description="first retry after a failed delivery; "
                                   "doubled after each further failure")
    retry_max_s: float = Field(600, gt=0, le=86400, description="longest wait between retries; also the "
                               "interval for errors a retry cannot fix (kept, never dropped)")
    lease_s: float = Field(60, ge=5, le=3600, description="a dispatcher owns a claimed message this long; after "
                           "a crash another one sends it")
    console_url: str | None = Field(None, description="duty console address put in messages, e.g. "
                                    "https://venuewatch.example.gov.cn/")

    @model_validator(mode="after")
    def _consistent(self) -> NotifySettings:
        seen: set[str] = set()
        for i, channel in enumerate(self.channels):
            if channel.name in seen:
                raise ValueError(f"channels[{i}].name: {channel.name!r} is used twice (give each channel its "
                                 f"own name)")
            seen.add(channel.name)
            # A lease that runs out while a send is still waiting lets a second dispatcher send it too.
            if channel.timeout_s * 2 > self.lease_s:
                raise ValueError(f"lease_s: {self.lease_s:g} must be at least twice the timeout_s of channel "
                                 f"{channel.name!r} ({channel.timeout_s:g}): raise lease_s or lower timeout_s")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_max_s: {self.retry_max_s:g} is below retry_initial_s "
                             f"{self.retry_initial_s:g} (make it at least as long)")
        return self

    def channel(self, name: str) -> ChannelSettings | None:
        return next((c for c in self.channels if c.name == name), None)

    def relative_to(self, base: Path) -> NotifySettings:
        """Resolve relative secret_file and smtp.password_file against the config file's folder."""
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else base / p

        channels = []
        for c in self.channels:
            smtp = c.smtp.model_copy(update={"password_file": fix(c.smtp.password_file)}) if c.smtp else None
            channels.append(c.model_copy(update={"secret_file": fix(c.secret_file), "smtp": smtp}))
        return self.model_copy(update={"channels": channels})
