#!/usr/bin/env bash
# The message catalogs (docs/i18n.md). The Chinese in the code and templates is the source text; English is
# the translation, in server/translations/en/LC_MESSAGES/messages.po.
#
#   scripts/i18n.sh extract   write server/translations/messages.pot from the code and the templates
#   scripts/i18n.sh update    extract, then merge new and changed messages into every .po (to translate)
#   scripts/i18n.sh compile   check the .po files and write the .mo files (optional: the server compiles a
#                             missing or older .mo in memory when it starts)
#   scripts/i18n.sh init LANG add a language (then add it to server/i18n.py LANGS)
#
# POT=path overrides where extract writes (tests/server/test_i18n.py extracts into a temporary file).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PYBABEL=("$PY" -m babel.messages.frontend)
DIR=server/translations
POT=${POT:-$DIR/messages.pot}

extract() {
    # N_ / NP_: marked where defined, translated where shown (server/i18n.py). Locations name the file only,
    # so moving code around does not rewrite the catalogs.
    "${PYBABEL[@]}" -q extract -F babel.cfg -o "$POT" --sort-output --add-location=file --width=120 \
        --project=venuewatch --copyright-holder="venuewatch contributors" \
        -k N_ -k NP_:1c,2 -k _l -k lazy_gettext -k lazy_pgettext:1c,2 .
}

case "${1:-}" in
    extract) extract ;;
    update)
        extract
        "${PYBABEL[@]}" -q update -i "$POT" -d "$DIR" --width=120 --ignore-obsolete
        echo "now translate the new (empty) and fuzzy entries of $DIR/*/LC_MESSAGES/messages.po," \
             "remove their #, fuzzy flags, then: scripts/i18n.sh compile"
        ;;
    compile) "${PYBABEL[@]}" compile -d "$DIR" --statistics ;;
    init)
        [ -n "${2:-}" ] || { echo "usage: scripts/i18n.sh init LANG (e.g. en)" >&2; exit 2; }
        extract
        "${PYBABEL[@]}" init -i "$POT" -d "$DIR" -l "$2" --width=120
        ;;
    *) echo "usage: scripts/i18n.sh extract|update|compile|init LANG" >&2; exit 2 ;;
esac
