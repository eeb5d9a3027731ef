import json

import pytest

from protocol import Event, ProtocolError, SensorState, Status, Telemetry, TopicError, decode, encode, parse_topic
from protocol.topics import build_topic

GOOD_EVENT = {
    "v": 1, "id": "01J0000000000000000000TEST", "seq": 7, "device": "pi-0001",
    "ts": "2026-11-26T21:04:05+08:00", "boot": "b-1", "mono": 123.5, "synced": True,
    "kind": "door", "sensor": "front", "state": "open",
}


def test_event_round_trip_keeps_every_field_and_offset():
    event = decode(Event, json.dumps(GOOD_EVENT))
    again = json.loads(encode(event))
    assert again["ts"] == "2026-11-26T21:04:05+08:00"
    assert {k: again[k] for k in GOOD_EVENT} == GOOD_EVENT


def test_event_keeps_fields_from_a_newer_agent():
    event = decode(Event, json.dumps({**GOOD_EVENT, "firmware": "1.2"}))
    assert json.loads(encode(event))["firmware"] == "1.2"


@pytest.mark.parametrize(("change", "field"), [
    ({"seq": "7"}, "seq"),              # strict: no string-to-int coercion
    ({"synced": "yes"}, "synced"),
    ({"kind": "smoke"}, "kind"),
    ({"ts": "2026-11-26 21:04:05"}, "ts"),   # no offset
    ({"ts": "yesterday"}, "ts"),
    ({"device": "PI/0001"}, "device"),
    ({"seq": -1}, "seq"),
])
def test_event_errors_name_the_topic_and_the_field(change, field):
    with pytest.raises(ProtocolError) as err:
        decode(Event, json.dumps({**GOOD_EVENT, **change}), topic="vw/pi-0001/event")
    assert err.value.reason == "invalid"
    assert str(err.value).startswith("vw/pi-0001/event: ")
    assert f"{field}:" in str(err.value)


def test_missing_field_is_named():
    payload = {k: v for k, v in GOOD_EVENT.items() if k != "boot"}
    with pytest.raises(ProtocolError, match="boot: is required but missing"):
        decode(Event, json.dumps(payload))


def test_other_protocol_versions_are_refused_with_their_own_reason():
    with pytest.raises(ProtocolError) as err:
        decode(Status, b'{"v": 2, "state": "online"}', topic="vw/x/status")
    assert err.value.reason == "bad_version"


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_non_objects_are_refused(payload):
    with pytest.raises(ProtocolError) as err:
        decode(Status, payload)
    assert err.value.reason in ("bad_json", "invalid")


def test_status_and_state_forbid_unknown_fields():
    with pytest.raises(ProtocolError, match="is not a known field"):
        decode(Status, b'{"v": 1, "state": "online", "colour": "red"}')
    with pytest.raises(ProtocolError):
        decode(SensorState, b'{"v": 1, "state": "open"}')  # ts missing


def test_telemetry_metrics_must_be_numbers():
    ok = decode(Telemetry, b'{"v":1,"ts":"2026-11-26T00:00:00Z","metrics":{"load_1m":0.5,"door_open.front":1}}')
    assert ok.metrics == {"load_1m": 0.5, "door_open.front": 1.0}
    with pytest.raises(ProtocolError, match="metric 'temp' must be a finite number"):
        decode(Telemetry, b'{"v":1,"ts":"2026-11-26T00:00:00Z","metrics":{"temp":"hot"}}')


def test_topics_parse_and_build():
    assert parse_topic("vw/pi-0001/state/front").sub == "front"
    assert parse_topic("vw/pi-0001/event").kind == "event"
    assert build_topic("pi-0001", "snapshot", "01ABC") == "vw/pi-0001/snapshot/01ABC"
    for bad in ("vw/pi-0001/unknown", "other/pi-0001/event", "vw/PI 1/event", "vw/pi-0001/event/extra", "vw"):
        with pytest.raises(TopicError):
            parse_topic(bad)


def test_version_field_is_required_on_the_wire():
    payload = {k: v for k, v in GOOD_EVENT.items() if k != "v"}
    with pytest.raises(ProtocolError, match="v: is required"):
        decode(Event, json.dumps(payload), topic="vw/pi-0001/event")


@pytest.mark.parametrize("version", [1.0, True, "1", None, 2])
def test_only_the_integer_1_is_version_1(version):
    with pytest.raises(ProtocolError) as err:
        decode(Event, json.dumps({**GOOD_EVENT, "v": version}))
    assert err.value.reason == "bad_version"


@pytest.mark.parametrize("payload", [
    b'{"v":1,"ts":"2026-11-26T00:00:00Z","metrics":{"load_1m":1e999}}',
    b'{"v":1,"ts":"2026-11-26T00:00:00Z","metrics":{"load_1m":NaN}}',
    b'{"v":1,"ts":"2026-11-26T00:00:00Z","metrics":{"load_1m":-Infinity}}',
])
def test_non_finite_numbers_are_refused(payload):
    with pytest.raises(ProtocolError):
        decode(Telemetry, payload, topic="vw/pi-0001/telemetry")


def test_long_door_ids_still_make_valid_metric_names():
    name = "door_open." + "d" * 63
    assert decode(Telemetry, json.dumps({"v": 1, "ts": "2026-11-26T00:00:00Z", "metrics": {name: 1}})).metrics


def test_out_of_range_numbers_anywhere_are_refused():
    with pytest.raises(ProtocolError) as err:
        decode(Event, json.dumps(GOOD_EVENT)[:-1] + ', "data": {"score": 1e999}}')
    assert err.value.reason == "bad_json"
