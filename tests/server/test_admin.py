"""管理: the county admin adds townships, villages, venues, devices and accounts from the console.

Through the real Flask app and the real inventory file: what the form sends lands in the YAML (comments
kept), in every part of the running server at once (a device added is heard without a restart), and in the
audit log. Bad forms come back with a plain-word message next to the field and change nothing.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from server.admin import checks
from server.inventory import load_inventory
from server.provision.inventory_edit import InventoryFile as InventoryEditor
from server.store import audit_log, events, venues
from server.users import authenticate
from tests.server.conftest import PASSWORD, event_payload

pytestmark = pytest.mark.usefixtures("offline_server")


def _login(server, name: str = "admin", lang: str | None = None):
    client = server.app.test_client()
    if lang:
        client.set_cookie("vw_lang", lang)
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": name, "password": PASSWORD, "csrf": csrf}).status_code == 302
    # Logging in starts a new session with a new CSRF token.
    return client, re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def _post(client, csrf: str, path: str, **form: str):
    return client.post(path, data={"csrf": csrf, **form})


def _inventory_path(server) -> Path:
    return Path(server.config.inventory)


def _field_error(html: str, form: str, field: str) -> str:
    match = re.search(rf'id="{form}-{field}-error">([^<]*)<', html)
    return match.group(1) if match else ""


WEEK = {"hours_mon": "08:30-12:00 14:00-17:30", "hours_tue": "08:30－12:00", "hours_sat": "09:00-11:00，15:00-17:00"}


def test_admin_adds_a_township_village_venue_and_device_and_the_running_server_uses_them(offline_server):
    server = offline_server
    path = _inventory_path(server)
    # An operator's comment in the file must survive the console's edits.
    path.write_text("# 东溪县场所清单，由县综治中心维护\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert server.inventory_watcher.check()
    generation = server.inventory.generation
    client, csrf = _login(server)

    steps = [
        ("/admin/township", {"id": "t-dongxi", "name": "东溪镇"}),
        ("/admin/village", {"township": "t-dongxi", "id": "v-shangcun", "name": "上村"}),
        ("/admin/venue", {"village": "v-shangcun", "id": "shangcun-hall", "name": "上村村委会活动室",
                          "holidays": "weekend", **WEEK}),
        ("/admin/device", {"venue": "shangcun-hall", "id": "pi-shangcun-01", "doors": "front, back"}),
    ]
    for url, form in steps:
        response = _post(client, csrf, url, **form)
        assert response.status_code == 302, (url, response.get_data(as_text=True)[:2000])

    page = client.get("/admin/").get_data(as_text=True)
    assert "已登记设备 pi-shangcun-01" in page
    assert "sudo venuewatch provision device pi-shangcun-01 --venue shangcun-hall --doors front,back" in page

    # The file: every entry under its parent, the hours as typed (normalised), the comment still first.
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# 东溪县场所清单，由县综治中心维护\n")
    on_disk = load_inventory(path)
    venue = on_disk.venues["shangcun-hall"]
    assert (venue.township_id, venue.village_id, venue.name) == ("t-dongxi", "v-shangcun", "上村村委会活动室")
    assert venue.hours == {"mon": ["08:30-12:00", "14:00-17:30"], "tue": ["08:30-12:00"],
                           "sat": ["09:00-11:00", "15:00-17:00"]}
    assert venue.calendar.holidays == "weekend"
    assert on_disk.device_doors["pi-shangcun-01"] == ("front", "back")
    assert path.with_name("inventory.yaml.bak").exists()

    # The running server: the same object every part holds was replaced in place, and SQL mirrors it.
    assert server.inventory.generation > generation
    assert server.inventory.venue_of("pi-shangcun-01").id == "shangcun-hall"
    with server.engine.connect() as conn:
        row = conn.execute(select(venues).where(venues.c.id == "shangcun-hall")).one()
        actions = [r.action for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]
    assert (row.township_name, row.village_name) == ("东溪镇", "上村")
    assert actions[-4:] == ["township_add", "village_add", "venue_add", "device_add"]
    listed = client.get("/api/v1/venues").get_json()["venues"]
    assert "shangcun-hall" in {v["id"] for v in listed}

    # The new device is heard at once: its first door event is stored, not rejected as unknown.
    assert server.ingest.handle("vw/pi-shangcun-01/event", event_payload("pi-shangcun-01", "open")) == "stored"
    with server.engine.connect() as conn:
        assert conn.execute(select(events.c.device).where(events.c.device == "pi-shangcun-01")).all()


def test_a_bad_form_comes_back_with_plain_words_next_to_the_field_and_changes_nothing(offline_server):
    server = offline_server
    path = _inventory_path(server)
    before = path.read_bytes()
    client, csrf = _login(server)

    response = _post(client, csrf, "/admin/township", id="T-Dongxi", name="镇t-one")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(html, "township", "id") == "编号只能用小写字母：请写成 t-dongxi"
    assert "同一上级下已有名为“镇t-one”的一项" in _field_error(html, "township", "name")
    assert 'value="T-Dongxi"' in html  # what was typed is kept for correcting
    assert 'aria-invalid="true"' in html

    response = _post(client, csrf, "/admin/venue", village="village-venue-a", id="venue-b", name="新场所",
                     hours_mon="9-12", hours_tue="08:00-12:00 11:00-13:00")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(html, "venue", "id") == "编号“venue-b”已被场所“场所venue-b”使用，请换一个"
    assert _field_error(html, "venue", "hours_mon").startswith("“9-12”不是时段：请写成 08:30-12:00")
    assert _field_error(html, "venue", "hours_tue") == "时段 08:00-12:00 和 11:00-13:00 重叠，请合并成一个"

    response = _post(client, csrf, "/admin/device", venue="venue-a", id="pi-c", doors="front front")
    html = response.get_data(as_text=True)
    assert _field_error(html, "device", "id") == "设备“pi-c”已登记在场所“场所venue-c”，一台设备只能属于一个场所"
    assert _field_error(html, "device", "doors") == "门磁编号“front”写了两次，每扇门一个编号"

    assert path.read_bytes() == before
    assert not path.with_name("inventory.yaml.bak").exists()


def test_the_messages_follow_the_console_language(offline_server):
    client, csrf = _login(offline_server, lang="en")
    html = _post(client, csrf, "/admin/village", township="", id="Up Village", name="").get_data(as_text=True)
    assert _field_error(html, "village", "township") == "Choose the township it belongs to"
    assert _field_error(html, "village", "name") == "Enter a name"
    assert "lowercase letters, digits" in _field_error(html, "village", "id")


def test_only_the_county_admin_has_the_admin_pages(offline_server):
    path = _inventory_path(offline_server)
    before = path.read_bytes()
    for name in ("duty-one", "reviewer"):
        client, csrf = _login(offline_server, name)
        assert client.get("/admin/").status_code == 404
        assert _post(client, csrf, "/admin/township", id="t-x", name="X").status_code == 404
        assert _post(client, csrf, "/admin/users", name="mallory", role="county_admin").status_code == 404
        assert "/admin/" not in client.get("/").get_data(as_text=True)  # no menu entry either
    client, csrf = _login(offline_server)
    assert _post(client, "forged", "/admin/township", id="t-x", name="X").status_code == 400
    assert path.read_bytes() == before
    assert client.get("/admin/").status_code == 200


def test_admin_adds_a_township_duty_account_with_a_generated_password_and_disables_it(offline_server):
    server = offline_server
    client, csrf = _login(server)
    response = _post(client, csrf, "/admin/users", name="zhang.wei", role="township_duty", scope="t-two",
                     password="")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    password = re.search(r'id="new-password">([^<]+)<', html).group(1)
    session = server.app.session_interface.get_signing_serializer(server.app).loads(
        client.get_cookie("vw_session").value)
    assert password not in json.dumps(session, default=str)  # the cookie is signed, not secret
    user = authenticate(server.engine, "zhang.wei", password)
    assert (user.role, user.scope) == ("township_duty", "t-two")
    listing = client.get("/admin/users").get_data(as_text=True)
    assert re.search(r'data-user="zhang.wei">\s*<td>zhang.wei</td><td>乡镇值班人员</td><td>镇t-two</td>', listing)
    assert password not in listing  # shown once, in the answer to the form only

    # The new account sees its own township only.
    their = server.app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', their.get("/login").get_data(as_text=True)).group(1)
    assert their.post("/login", data={"username": "zhang.wei", "password": password, "csrf": token}).status_code == 302
    assert {v["id"] for v in their.get("/api/v1/venues").get_json()["venues"]} == {"venue-c"}

    bad = _post(client, csrf, "/admin/users", name="zhang.wei", role="township_duty", scope="", password="short")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert _field_error(html, "user", "name") == "用户名“zhang.wei”已经有人用了，请换一个"
    assert _field_error(html, "user", "scope") == "这个角色只管一个乡镇：请选择是哪一个"
    assert _field_error(html, "user", "password") == "密码太短：至少 10 个字符；留空则由系统生成"
    assert "short" not in html  # a typed password is never sent back

    assert _post(client, csrf, "/admin/users/zhang.wei/disable").status_code == 302
    assert authenticate(server.engine, "zhang.wei", password) is None
    assert their.get("/api/v1/venues").status_code == 401  # the open session ends at once
    assert _post(client, csrf, "/admin/users/admin/disable").status_code == 302
    assert authenticate(server.engine, "admin", PASSWORD) is not None  # not oneself
    assert "不能停用自己的账号" in client.get("/admin/users").get_data(as_text=True)


def test_another_process_edit_is_taken_and_a_broken_file_is_refused_keeping_the_last_good(offline_server, caplog):
    server = offline_server
    path = _inventory_path(server)
    # As `provision device` does it, in another process: a device added to venue-a.
    editor = InventoryEditor(path)
    editor.add_device("venue-a", "pi-a2", ["front"])
    editor.save(editor.checked_text())
    assert server.inventory_watcher.check()
    assert server.inventory.venue_of("pi-a2").id == "venue-a"

    path.write_text(path.read_text(encoding="utf-8") + "townships: oops\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="venuewatch.inventory"):
        assert not server.inventory_watcher.check()
    assert "event=inventory_refused" in caplog.text and str(path) in caplog.text
    assert server.inventory.venue_of("pi-a2").id == "venue-a"  # the last good one stays in force

    # The console refuses to edit a broken file, in plain words, and leaves it as it is.
    client, csrf = _login(server)
    broken = path.read_bytes()
    html = _post(client, csrf, "/admin/township", id="t-new", name="新镇").get_data(as_text=True)
    assert "场所清单文件有误，未做任何修改" in html
    assert path.read_bytes() == broken


def test_an_inventory_the_server_cannot_write_gives_a_plain_message(offline_server):
    path = _inventory_path(offline_server)
    before = path.read_bytes()
    # The lock file cannot be created (a folder is in its place): the write fails as on a read-only /etc.
    path.with_name(f".{path.name}.lock").mkdir()
    client, csrf = _login(offline_server)
    response = _post(client, csrf, "/admin/township", id="t-new", name="新镇")
    assert response.status_code == 422
    assert f"无法写入场所清单文件 {path}" in response.get_data(as_text=True)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("text", "periods", "problem"), [
    ("", [], None),
    ("08:30-12:00 14:00-17:30", ["08:30-12:00", "14:00-17:30"], None),
    ("14:00-17:30，08:30-12:00", ["08:30-12:00", "14:00-17:30"], None),  # sorted; a Chinese comma
    ("08：30～12：00", ["08:30-12:00"], None),  # full-width colon and tilde
    ("8:30-12:00", [], "“8:30-12:00”不是时段"),
    ("12:00-08:00", [], "“12:00-08:00”不是时段"),
    ("08:00-12:00 12:00-13:00", ["08:00-12:00", "12:00-13:00"], None),  # touching is not overlapping
    ("08:00-12:01 12:00-13:00", [], "时段 08:00-12:01 和 12:00-13:00 重叠"),
])
def test_hours_as_staff_type_them(text, periods, problem):
    parsed, found = checks.parse_hours_field(text)
    assert parsed == periods
    if problem is None:
        assert found is None
    else:
        assert (found[0] % found[1]).startswith(problem)


def test_every_problem_names_its_kind_in_words():
    data = load_inventory(Path(__file__).parent.parent.parent / "deploy/examples/inventory.yaml").data
    problems = checks.check_user({"name": "a b", "role": "village_viewer", "scope": "nowhere"}, data, set())
    message, params = problems["scope"]
    assert params["kind"] == checks.KIND_NAMES["village"]
    assert message % {**params, "kind": params["kind"][1]} == "“nowhere”不是一个村，请从列表中选择"


def test_a_user_changes_a_handed_over_password_in_the_console_and_other_sessions_end(offline_server):
    server = offline_server
    client, csrf = _login(server, "duty-one")
    other, _ = _login(server, "duty-one")  # the same person, logged in on the duty-room PC too
    assert "修改密码" in client.get("/").get_data(as_text=True)

    bad = _post(client, csrf, "/password", current="wrong password", new="short", again="other")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert _field_error(html, "password", "current") == "当前密码不对"
    assert _field_error(html, "password", "new") == "新密码太短：至少 10 个字符"
    assert _field_error(html, "password", "again") == "两次输入的新密码不一样"
    same = _post(client, csrf, "/password", current=PASSWORD, new=PASSWORD, again=PASSWORD).get_data(as_text=True)
    assert _field_error(same, "password", "new") == "新密码不能和当前密码相同"
    assert authenticate(server.engine, "duty-one", PASSWORD) is not None  # nothing changed so far

    done = _post(client, csrf, "/password", current=PASSWORD, new="a new sentence 2026", again="a new sentence 2026")
    assert done.status_code == 200 and "密码已修改" in done.get_data(as_text=True)
    assert authenticate(server.engine, "duty-one", PASSWORD) is None
    assert authenticate(server.engine, "duty-one", "a new sentence 2026") is not None
    assert client.get("/api/v1/venues").status_code == 200  # this session stays
    assert other.get("/api/v1/venues").status_code == 401  # the other one ended


def test_a_fresh_install_says_how_to_make_the_first_admin(offline_server):
    from sqlalchemy import delete

    from server.store import api_tokens, users

    client = offline_server.app.test_client()
    assert "还没有任何账号" not in client.get("/login").get_data(as_text=True)
    with offline_server.engine.begin() as conn:
        conn.execute(delete(api_tokens))
        conn.execute(delete(users))
    assert "venuewatch user add admin --role county_admin" in client.get("/login").get_data(as_text=True)


def test_admin_changes_a_venues_hours_and_the_next_opening_is_judged_by_them(offline_server):
    from server.store import alerts

    server = offline_server
    path = _inventory_path(server)

    def after_hours_alerts() -> int:
        with server.engine.connect() as conn:
            return len(conn.execute(select(alerts.c.id).where(
                (alerts.c.venue_id == "venue-a") & (alerts.c.rule == "door_after_hours"))).all())

    # Closed all week: an opening now is after hours.
    assert server.ingest.handle("vw/pi-a/event", event_payload("pi-a", "open")) == "stored"
    assert server.ingest.handle("vw/pi-a/event", event_payload("pi-a", "closed")) == "stored"
    assert after_hours_alerts() == 1
    client, csrf = _login(server)
    page = client.get("/admin/venues/venue-a").get_data(as_text=True)
    assert 'id="venue-hours_mon"' in page and 'value=""' in page  # venue-a is closed all week now

    bad = _post(client, csrf, "/admin/venues/venue-a", hours_mon="8:00-17:00", holidays="sometimes")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert _field_error(html, "venue", "hours_mon").startswith("“8:00-17:00”不是时段")
    assert _field_error(html, "venue", "holidays") == "请从列表中选择节假日安排"
    assert 'value="8:00-17:00"' in html  # kept for correcting

    every_day = {f"hours_{d}": "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    done = _post(client, csrf, "/admin/venues/venue-a", holidays="normal", **every_day)
    assert done.status_code == 302
    assert "已修改 场所venue-a 的开放时间" in client.get(done.headers["Location"]).get_data(as_text=True)
    venue = load_inventory(path).venues["venue-a"]
    assert venue.hours == {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    assert venue.calendar.holidays == "normal"
    assert server.inventory.venues["venue-a"].hours == venue.hours  # in force in the running server

    # Open now by the new hours, within the same minute: the next opening raises no 非开放时段开门.
    assert server.ingest.handle("vw/pi-a/event", event_payload("pi-a", "open")) == "stored"
    assert after_hours_alerts() == 1
    assert client.get("/admin/venues/no-such-venue").status_code == 404
