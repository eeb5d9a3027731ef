"""The status board and the venue page through Flask's test client: the venue page's route and the cameras
endpoint (latest snapshot per camera), with authentication and township scoping."""

from __future__ import annotations

import json

from tests.helpers import cdnet_frame
from tests.server.conftest import bearer, event_payload
from tests.server.test_web import login


def _camera_event(server, device: str, kind: str, state: str, camera: str = "hall") -> str:
    payload = event_payload(device, state, kind=kind, sensor=camera)
    assert server.ingest.handle(f"vw/{device}/event", payload) == "stored"
    return json.loads(payload)["id"]


def test_cameras_need_a_login_and_stay_inside_the_township(offline_server):
    client = offline_server.app.test_client()
    assert client.get("/api/v1/venues/venue-a/cameras").status_code == 401
    hidden = client.get("/api/v1/venues/venue-c/cameras", headers=bearer(offline_server, "duty-one"))
    assert hidden.status_code == 404 and hidden.get_json()["error"] == "venue 'venue-c' not found"
    assert client.get("/api/v1/venues/nope/cameras", headers=bearer(offline_server)).status_code == 404
    mine = client.get("/api/v1/venues/venue-a/cameras", headers=bearer(offline_server, "duty-one"))
    assert mine.status_code == 200 and mine.get_json() == {"venue": "venue-a", "cameras": []}


def test_each_camera_shows_its_latest_snapshot(offline_server):
    handle = offline_server.ingest.handle
    older = _camera_event(offline_server, "pi-b", "motion", "start")
    assert handle(f"vw/pi-b/snapshot/{older}-900", cdnet_frame(1)) == "stored"
    newer = _camera_event(offline_server, "pi-b", "tamper", "covered")
    assert handle(f"vw/pi-b/snapshot/{newer}-901", cdnet_frame(2)) == "stored"
    assert handle(f"vw/pi-b/snapshot/{newer}-902", cdnet_frame(3)) == "stored"  # the "after" picture
    _camera_event(offline_server, "pi-b", "camera", "online", camera="yard")  # reported, never a picture
    client = offline_server.app.test_client()
    data = client.get("/api/v1/venues/venue-b/cameras", headers=bearer(offline_server, "reviewer")).get_json()
    by_name = {c["camera"]: c for c in data["cameras"]}
    assert set(by_name) == {"hall", "yard"}
    hall = by_name["hall"]
    assert (hall["device"], hall["kind"], hall["state"]) == ("pi-b", "tamper", "covered")
    assert hall["snapshot"]["id"] == f"pi-b/{newer}-902"
    assert hall["snapshot"]["url"] == f"/api/v1/snapshots/pi-b/{newer}-902.jpg"
    assert (hall["snapshot"]["kind"], hall["snapshot"]["event_id"]) == ("tamper", newer)
    assert by_name["yard"]["snapshot"] is None and by_name["yard"]["state"] == "online"
    picture = client.get(hall["snapshot"]["url"], headers=bearer(offline_server, "reviewer"))
    assert picture.status_code == 200 and picture.data == cdnet_frame(3)


def test_a_door_openings_pictures_count_only_for_a_devices_sole_camera(offline_server):
    handle = offline_server.ingest.handle
    _camera_event(offline_server, "pi-a", "camera", "online")
    door = event_payload("pi-a", "open")
    assert handle("vw/pi-a/event", door) == "stored"
    door_id = json.loads(door)["id"]
    assert handle(f"vw/pi-a/snapshot/{door_id}-950", cdnet_frame(4)) == "stored"
    get = offline_server.app.test_client().get
    [hall] = get("/api/v1/venues/venue-a/cameras", headers=bearer(offline_server)).get_json()["cameras"]
    assert hall["snapshot"]["event_id"] == door_id
    # A second camera: the agent sends a door opening's pictures from every camera, unnamed.
    _camera_event(offline_server, "pi-a", "camera", "online", camera="yard")
    cameras = get("/api/v1/venues/venue-a/cameras", headers=bearer(offline_server)).get_json()["cameras"]
    assert [c["snapshot"] for c in cameras] == [None, None]


def test_venue_page_is_scoped_like_the_api(offline_server):
    client = offline_server.app.test_client()
    assert client.get("/venues/venue-a").status_code == 302  # to the login page
    login(client, "duty-one")
    page = client.get("/venues/venue-a")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "场所venue-a" in html and '"venueId": "venue-a"' in html and "venue.js" in html
    assert client.get("/venues/venue-c").status_code == 404  # another township's
    assert client.get("/venues/no-such-venue").status_code == 404


def test_board_lists_only_the_users_township(offline_server):
    client = offline_server.app.test_client()
    venues = client.get("/api/v1/venues", headers=bearer(offline_server, "duty-two")).get_json()["venues"]
    assert [v["id"] for v in venues] == ["venue-c"]
    assert {v["township"] for v in venues} == {"t-two"}
    login(client, "duty-two")
    html = client.get("/venues").get_data(as_text=True)
    assert 'id="board"' in html and "测试县" in html
