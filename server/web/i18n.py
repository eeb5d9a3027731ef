"""The console's language: Flask-Babel on server/i18n.py's catalogs, the 中文 / English switch, the JS strings.

The choice is a cookie of its own (not the session): it outlives logging out and in, and belongs to the PC
in front of the user. Without a choice the console is Chinese. The browser's Accept-Language is deliberately
not consulted: duty-room PCs often run an English Windows or browser for Chinese-speaking staff, and a
console that turned English by itself would confuse the people it serves. Choosing English is one click.
"""

from __future__ import annotations

from typing import Any

from babel import Locale
from flask import Blueprint, Flask, abort, current_app, redirect, request
from flask_babel import Babel, Domain, get_locale, gettext, pgettext
from werkzeug.utils import cached_property

from server import i18n
from server.alerts import OUTCOMES
from server.vocab import OUTCOME_NAMES
from server.web.auth import csrf_ok
from server.web.jsstrings import JS_STRINGS, PAGE_SCRIPTS

COOKIE = "vw_lang"
COOKIE_DAYS = 400  # the longest a browser keeps a cookie

bp = Blueprint("lang", __name__)


_LANG_OF_LANGUAGE = {Locale.parse(locale).language: lang for lang, locale in i18n.LOCALES.items()}


def current_lang() -> str:
    """The language of this request: the user's choice, else Chinese. Follows flask_babel.force_locale."""
    locale = get_locale()
    return _LANG_OF_LANGUAGE.get(locale.language, i18n.DEFAULT_LANG) if locale is not None else i18n.DEFAULT_LANG


def _select_locale() -> str:
    return i18n.LOCALES[i18n.lang_or_default(request.cookies.get(COOKIE))]


def _select_timezone() -> str:
    return str(current_app.extensions["venuewatch"].tz)


class _CatalogDomain(Domain):
    """Flask-Babel's domain, reading the catalogs server/i18n.py loads (a .mo, or the .po compiled in memory)."""

    def get_translations(self) -> Any:
        return i18n.translations(current_lang())


class _Babel(Babel):
    @cached_property
    def domain_instance(self) -> Domain:
        return _CatalogDomain()


def init_app(app: Flask) -> None:
    _Babel(app, locale_selector=_select_locale, timezone_selector=_select_timezone,
           default_locale=i18n.LOCALES[i18n.DEFAULT_LANG])
    app.register_blueprint(bp)
    app.context_processor(_template_globals)


def _template_globals() -> dict[str, Any]:
    lang = current_lang()
    return {"lang": lang, "html_lang": i18n.HTML_LANG[lang], "html_langs": i18n.HTML_LANG,
            "lang_names": i18n.LANG_NAMES, "langs": i18n.LANGS, "js_strings": js_strings,
            "tz": str(current_app.extensions["venuewatch"].tz)}


def js_strings(page: str | None) -> dict[str, str]:
    """The translated strings the scripts of `page` show (server/web/jsstrings.py), for VW.t(key)."""
    out: dict[str, str] = {}
    for script in PAGE_SCRIPTS.get(page or "", ("common",)):
        for key, message in JS_STRINGS[script].items():
            out[key] = pgettext(*message) if isinstance(message, tuple) else gettext(message)
    return out


def outcome_labels() -> dict[str, str]:
    """The outcomes staff may choose (server/alerts.py), named in this request's language."""
    return {key: gettext(OUTCOME_NAMES.get(key, label)) for key, label in OUTCOMES.items()}


@bp.route("/lang", methods=["POST"])
def choose() -> Any:
    """The header's 中文 / English buttons: remember the choice and show the same page again."""
    if not csrf_ok():
        abort(400, gettext("表单已过期，请刷新页面后重试"))
    target = request.form.get("next", "")
    # Only local paths: an open redirect would let a phishing link borrow our server's name.
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = redirect(target)
    lang = request.form.get("lang")
    if lang in i18n.LANGS:
        response.set_cookie(COOKIE, lang, max_age=COOKIE_DAYS * 86400, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response
