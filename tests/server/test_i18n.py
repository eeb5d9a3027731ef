"""The catalogs are complete, nothing Chinese escapes them, and the console honours the language switch.

The source text is Chinese (server/i18n.py): a string missing from the English catalog would show Chinese to an
English reader, and a Chinese word written straight into a template or a script would never be translated.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations

from server import i18n
from server.web.jsstrings import JS_STRINGS, PAGE_SCRIPTS

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"
POT = SERVER / "translations" / "messages.pot"
FIX = ("run `scripts/i18n.sh update`, translate the new and fuzzy entries of "
       "server/translations/en/LC_MESSAGES/messages.po (docs/i18n.md), and commit both files")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]+")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")


def _ids(catalog: Any) -> dict[Any, Any]:
    return {(m.context, m.id): m for m in catalog if m.id}


def _name(key: tuple[str | None, str]) -> str:
    context, msgid = key
    return f"{msgid!r}" + (f" (context {context!r})" if context else "")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Any]:
    """The messages the code and templates hold now, extracted as `scripts/i18n.sh extract` does."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    env = {**os.environ, "POT": str(pot), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "scripts/i18n.sh", "extract"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    with pot.open("rb") as fh:
        return _ids(read_po(fh))


def _catalog(lang: str) -> dict[Any, Any]:
    with i18n.catalog_path(lang).open("rb") as fh:
        return _ids(read_po(fh))


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGS if lang != i18n.DEFAULT_LANG])
def test_every_message_has_a_translation(extracted, lang):
    catalog = _catalog(lang)
    missing = [_name(k) for k in extracted if k not in catalog]
    empty = [_name(k) for k, m in catalog.items() if k in extracted and not (m.string if isinstance(m.string, str)
                                                                              else all(m.string))]
    fuzzy = [_name(k) for k, m in catalog.items() if k in extracted and m.fuzzy]
    problems = ([f"not in the {lang} catalog: {', '.join(missing)}"] if missing else []) + \
        ([f"not translated: {', '.join(empty)}"] if empty else []) + \
        ([f"fuzzy (check the guess, then remove the #, fuzzy line): {', '.join(fuzzy)}"] if fuzzy else [])
    assert not problems, f"{i18n.catalog_path(lang)}: " + "; ".join(problems) + f". To fix: {FIX}."


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGS if lang != i18n.DEFAULT_LANG])
def test_translations_keep_the_placeholders(lang):
    """A translation that drops or renames %(name)s or {name} would fail, or show a gap, at run time."""
    wrong = []
    for (_context, msgid), m in _catalog(lang).items():
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        want = sorted(PLACEHOLDER.findall(msgid if isinstance(msgid, str) else msgid[0]))
        wrong += [f"{msgid!r} -> {s!r}" for s in strings if s and sorted(PLACEHOLDER.findall(s)) != want]
    assert not wrong, f"{i18n.catalog_path(lang)}: placeholders differ: " + "; ".join(wrong)


def test_the_catalogs_are_not_stale(extracted):
    with POT.open("rb") as fh:
        template = _ids(read_po(fh))
    stale = {"messages.pot lacks": [k for k in extracted if k not in template],
             "messages.pot still has": [k for k in template if k not in extracted]}
    for lang in i18n.LANGS:
        if lang != i18n.DEFAULT_LANG:
            stale[f"{lang}/messages.po still has"] = [k for k in _catalog(lang) if k not in extracted]
    problems = [f"{what} {', '.join(map(_name, keys))}" for what, keys in stale.items() if keys]
    assert not problems, "server/translations is stale: " + "; ".join(problems) + f". To fix: {FIX}."


# --- nothing Chinese outside the catalog ---------------------------------------------------------------------

_GETTEXT_CALL = re.compile(r"""\b(?:_|gettext|ngettext|pgettext|npgettext)\(\s*(?:(?:'[^']*'|"[^"]*")\s*,\s*)*"""
                           r"""(?:'[^']*'|"[^"]*")""")
_TRANS_BLOCK = re.compile(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", re.S)
_JINJA_COMMENT = re.compile(r"{#.*?#}", re.S)
_JS_COMMENT = re.compile(r"/\*.*?\*/|(?:^|(?<=\s))//[^\n]*", re.S | re.M)


def _blank(match: re.Match[str]) -> str:
    return "\n" * match.group(0).count("\n")  # keeps the line numbers of what follows


def _chinese_lines(text: str) -> list[str]:
    return [f"line {n}: {', '.join(CJK.findall(line))}" for n, line in enumerate(text.splitlines(), 1)
            if CJK.search(line)]


@pytest.mark.parametrize("template", sorted((SERVER / "web" / "templates").glob("*.html"))
                         + sorted((SERVER / "reports" / "templates").glob("*.html")), ids=lambda p: p.name)
def test_templates_hold_no_chinese_outside_gettext(template):
    text = template.read_text(encoding="utf-8")
    for pattern in (_JINJA_COMMENT, _TRANS_BLOCK, _GETTEXT_CALL):
        text = pattern.sub(_blank, text)
    found = _chinese_lines(text)
    assert not found, (f"{template.relative_to(ROOT)}: Chinese outside _(): {'; '.join(found)}. Wrap it, e.g. "
                       f"{{{{ _('中文') }}}}, then {FIX}.")


@pytest.mark.parametrize("script", sorted((SERVER / "web" / "static").glob("*.js")), ids=lambda p: p.name)
def test_scripts_hold_no_chinese(script):
    """A script's words come from server/web/jsstrings.py through VW.t(key); comments may use the glossary."""
    found = _chinese_lines(_JS_COMMENT.sub(_blank, script.read_text(encoding="utf-8")))
    assert not found, (f"{script.relative_to(ROOT)}: Chinese in the code: {'; '.join(found)}. Add the string to "
                       f"server/web/jsstrings.py and show it with VW.t(key), then {FIX}.")


_CALL_KEY = re.compile(r"""\bt\(\s*(?:"([^"]+)"|'([^']+)')""")


@pytest.mark.parametrize("page", sorted(PAGE_SCRIPTS))
def test_scripts_ask_only_for_keys_their_page_has(page):
    keys = {k for script in PAGE_SCRIPTS[page] for k in JS_STRINGS[script]}
    unknown = []
    for script in PAGE_SCRIPTS[page]:
        source = _JS_COMMENT.sub(_blank, (SERVER / "web" / "static" / f"{script}.js").read_text(encoding="utf-8"))
        unknown += [f"{script}.js: {a or b}" for a, b in _CALL_KEY.findall(source) if (a or b) not in keys]
    assert not unknown, f"keys missing from server/web/jsstrings.py for page {page!r}: {', '.join(unknown)}"


def test_script_keys_are_unique_across_a_page():
    for page, scripts in PAGE_SCRIPTS.items():
        seen: dict[str, str] = {}
        for script in scripts:
            for key in JS_STRINGS[script]:
                assert key not in seen, f"{page}: key {key!r} is in both {seen[key]} and {script}"
                seen[key] = script


USER_FACING = sorted([*(SERVER / "web").glob("*.py"), SERVER / "notify" / "templates.py",
                      SERVER / "reports" / "text.py", SERVER / "reports" / "render.py", SERVER / "vocab.py"])


@pytest.mark.parametrize("module", USER_FACING, ids=lambda p: str(p.relative_to(SERVER)))
def test_python_shows_no_chinese_that_is_not_in_the_catalog(extracted, module):
    """Chinese text in the web layer, the messages and the reports is a message (N_, gettext) or it is missed."""
    messages = {msgid for _context, msgid in extracted}
    tree = ast.parse(module.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    stray = [f"line {node.lineno}: {node.value!r}" for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and CJK.search(node.value)
             and id(node) not in docstrings and node.value not in messages
             and node.value not in i18n.LANG_NAMES.values()]
    assert not stray, f"{module.relative_to(ROOT)}: Chinese not in the catalog: {'; '.join(stray)}. Mark it with " \
                      f"N_() or show it with gettext(), then {FIX}."


# --- the words themselves -------------------------------------------------------------------------------------


def test_outcome_and_tamper_names_repeat_what_the_alert_book_says():
    from server import alerts, rules, vocab

    assert vocab.OUTCOME_NAMES == alerts.OUTCOMES
    assert vocab.AUTO_OUTCOME == alerts.AUTO_OUTCOME
    titles = {state: f"摄像头{word}" for state, word in rules.TAMPER_STATES.items()}  # as alerts.py writes them
    assert titles == vocab.TAMPER_TITLES


def test_a_po_file_compiles_in_memory_without_its_mo():
    catalog = Translations(__import__("io").BytesIO(i18n.compile_po(i18n.catalog_path("en"))), i18n.DOMAIN)
    assert catalog.gettext("非开放时段开门") == "Door opened outside opening hours"
    assert catalog.pgettext("nav", "告警") == "Alerts"


def test_dates_and_numbers_follow_the_language():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    at = datetime(2026, 11, 25, 15, 5, tzinfo=UTC)
    zh, en = i18n.Text("zh", ZoneInfo("Asia/Shanghai")), i18n.Text("en", ZoneInfo("Asia/Shanghai"))
    assert (zh.datetime(at), en.datetime(at)) == ("2026-11-25 23:05", "25 Nov 2026, 23:05")
    assert (zh.percent(0.9534), en.decimal(12345.67), zh.number(1440)) == ("95.3%", "12,345.7", "1,440")
    assert i18n.Text("fr").lang == "zh"  # an unknown language is the default, never an error


def test_report_words_and_messages_in_english_hold_no_chinese():
    from server.notify.templates import REASONS, render
    from server.reports.text import words

    assert not [w for w in words("en").values() if CJK.search(w)]
    alert = {"rule": "camera_tamper", "detail": {"state": "moved"}, "severity": "high",
             "opened_at": "2026-11-25T15:05:00Z", "device": "pi-1", "sensor": "cam"}
    for reason in REASONS:
        text = render(alert, reason, "en")["text"]
        assert not CJK.search(text.replace("【", "").replace("】", "")), text  # 【】 frame the severity in both
    assert "- Opened: 25 Nov 2026, 23:05" in render(alert, "new", "en")["text"]
    assert render(alert, "new", "en")["title"] == "【High】Camera moved"
    assert render(alert, "new")["title"] == "【高】摄像头移位"


# --- the console ----------------------------------------------------------------------------------------------


def _strings(html: str) -> dict[str, str]:
    import json

    return json.loads(re.search(r'<script id="vw-strings" type="application/json">(.*?)</script>', html, re.S)[1])


def _csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html)[1]


def test_the_console_stays_chinese_until_english_is_chosen(offline_server):
    from tests.server.test_web import login

    client = offline_server.app.test_client()
    login(client, "admin")
    # An English browser (Accept-Language) does not change the language: duty-room PCs often have one.
    page = client.get("/venues", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page and "场所状态" in page and _strings(page)["door.open"] == "开门"
    assert '<meta name="vw-tz" content="Asia/Shanghai">' in page

    chosen = client.post("/lang", data={"lang": "en", "next": "/venues?x=1", "csrf": _csrf(page)})
    assert chosen.status_code == 302 and chosen.headers["Location"] == "/venues?x=1"
    cookie = chosen.headers["Set-Cookie"]
    assert cookie.startswith("vw_lang=en;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    page = client.get("/venues").get_data(as_text=True)
    assert '<html lang="en-GB">' in page and "Venue status" in page and "场所状态" not in page
    strings = _strings(page)
    assert strings["door.open"] == "open" and strings["duration.60"] == "1 hour"
    assert not [v for v in strings.values() if CJK.search(v)]
    assert "admin (county administrator)" in page
    alerts = client.get("/").get_data(as_text=True)
    assert _strings(alerts)["rule.door_after_hours"] == "Door opened outside opening hours"
    assert '<option value="false_alarm_sensor">False alarm: sensor</option>' in alerts
    labels = {o["id"]: o["label"] for o in client.get("/api/v1/outcomes").get_json()["outcomes"]}
    assert labels["real_intrusion"] == "Real intrusion"

    client.post("/lang", data={"lang": "zh", "next": "/", "csrf": _csrf(page)})
    assert "待处理告警" in client.get("/").get_data(as_text=True)


def test_the_login_page_has_the_switch_and_speaks_the_chosen_language(offline_server):
    client = offline_server.app.test_client()
    client.set_cookie("vw_lang", "en")
    page = client.get("/login").get_data(as_text=True)
    assert "Duty officer login" in page and 'data-lang="zh"' in page and ">中文</button>" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    failed = client.post("/login", data={"username": "admin", "password": "wrong", "csrf": csrf})
    assert "Wrong user name or password" in failed.get_data(as_text=True)
    client.set_cookie("vw_lang", "klingon")  # anything else is the default
    assert "值班人员登录" in client.get("/login").get_data(as_text=True)


def test_the_switch_needs_the_forms_token_and_stays_on_this_server(offline_server):
    client = offline_server.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    assert client.post("/lang", data={"lang": "en", "next": "/"}).status_code == 400
    away = client.post("/lang", data={"lang": "en", "next": "//evil.example/", "csrf": csrf})
    assert away.headers["Location"] == "/"
