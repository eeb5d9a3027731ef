"""The venuewatch wire contract (protocol v1): topics and message models shared by edge and server.

Pure: nothing here does I/O. Both sides import it, so a change here is a change of the contract.
"""

from protocol.codec import ProtocolError, decode, encode
from protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Command,
    Event,
    SensorState,
    Status,
    Telemetry,
)
from protocol.topics import DEFAULT_ROOT, Topic, TopicError, build_topic, parse_topic

__all__ = [
    "DEFAULT_ROOT",
    "PROTOCOL_VERSION",
    "Ack",
    "Command",
    "Event",
    "ProtocolError",
    "SensorState",
    "Status",
    "Telemetry",
    "Topic",
    "TopicError",
    "build_topic",
    "decode",
    "encode",
    "parse_topic",
]
