"""Notifications to duty staff: DingTalk and WeCom group robots, e-mail and a generic webhook.

Messages go through a durable outbox (the `notifications` table): stored first, sent by the dispatcher,
retried with backoff until delivered. A channel outage delays a notification; it never drops one.
See docs/notifications.md.
"""

from server.notify.channels import DeliveryError, send
from server.notify.config import ChannelSettings, NotifySettings, SmtpSettings
from server.notify.dispatcher import Dispatcher
from server.notify.outbox import Outbox
from server.notify.templates import message, render

__all__ = [
    "ChannelSettings",
    "DeliveryError",
    "Dispatcher",
    "NotifySettings",
    "Outbox",
    "SmtpSettings",
    "message",
    "render",
    "send",
]
