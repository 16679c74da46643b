"""The message catalogues: every message the pages and views use has its Japanese, and the committed .mo files
say what their .po files say (a fresh clone, the wheel and the Docker image read the .mo as committed, with no
Babel step).

The messages are extracted here exactly as `make translations` extracts them (babel.cfg, the Makefile's
BABEL_KEYWORDS) into a temporary file, so a new _("…") anywhere fails this test until its Japanese is written.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import force_locale, gettext

from api.agents import NAV_EXTENSION

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "api" / "translations"
LANGUAGES = ("ja",)  # English is the message ids themselves


def _keywords() -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [line] = [line for line in makefile.splitlines() if line.startswith("BABEL_KEYWORDS")]
    return shlex.split(line.partition(":=")[2])


def _po(language: str) -> Catalog:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=language)


def _key(message: Message) -> tuple[str, str]:
    single = message.id[0] if isinstance(message.id, (tuple, list)) else message.id
    context = message.context.decode() if isinstance(message.context, bytes) else message.context  # read_mo's
    return context or "", single


def _strings(message: Message) -> tuple[str, ...]:
    strings = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
    return tuple(text or "" for text in strings)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)", text))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    template = tmp_path_factory.mktemp("catalogue") / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), *_keywords(),
                                "-o", str(template), str(ROOT / "api")])
    with template.open("rb") as file:
        catalog = read_po(file)
    assert len([message for message in catalog if message.id]) > 100  # the extraction did find the pages
    return catalog


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_in_use_has_its_translation(extracted: Catalog, language: str) -> None:
    po = {_key(message): message for message in _po(language) if message.id}
    untranslated, fuzzy, placeholders = [], [], []
    for message in extracted:
        if not message.id:
            continue
        translated = po.get(_key(message))
        if translated is None or not all(_strings(translated)):
            untranslated.append(_key(message))
        elif translated.fuzzy:
            fuzzy.append(_key(message))
        elif any(_placeholders(text) != _placeholders(_key(message)[1]) for text in _strings(translated)):
            placeholders.append(_key(message))
    assert not untranslated, f"no {language} translation (run `make translations`, fill them in): {untranslated}"
    assert not fuzzy, f"fuzzy {language} translations (check them, drop the fuzzy flag): {fuzzy}"
    assert not placeholders, f"{language} translations whose %(name)s do not match their message: {placeholders}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_compiled_from_the_po(language: str) -> None:
    """What `pybabel compile` would write now, message for message: a .po edited without `make translations`
    would otherwise leave the pages on the old words."""
    compiled = {
        _key(message): _strings(message) for message in _po(language)
        if message.id and not message.fuzzy and all(_strings(message))
    }
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo").open("rb") as file:
        committed = {_key(message): _strings(message) for message in read_mo(file) if message.id}
    stale = sorted(key for key in compiled.keys() | committed.keys() if compiled.get(key) != committed.get(key))
    assert not stale, f"messages.mo differs from messages.po (run `make translations`): {stale[:20]}"


def test_every_top_bar_link_reads_in_japanese(app: Flask) -> None:
    """Each blueprint names its top-bar link in English (add_nav_link, a keyword of the extraction); the page
    shows the catalogue's word."""
    labels = [label for label, *_rest in app.extensions[NAV_EXTENSION]]
    assert "Queues" in labels
    with app.test_request_context("/agent/"), force_locale("ja"):
        missing = [label for label in labels if gettext(label) == label]
    assert not missing, f"top-bar links without Japanese: {missing}"


def test_the_wheel_ships_the_compiled_catalogues() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["api"]
    for language in LANGUAGES:
        path = f"translations/{language}/LC_MESSAGES/messages.mo"
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), (path, patterns)
