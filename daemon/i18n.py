"""The message catalogue: every label, help text and refusal in English and French.

One folder per language (``daemon/locale/<language>/*.json``: key → text with
``{name}`` placeholders, one file per area of the product so that pages built in
parallel do not edit the same file), merged and read once at import; a key in two
files is an error. No build step, no gettext tools. It lives in the daemon, not the web, because the daemon's own refusals
(a setting's bounds, a form field's type) are catalogue texts too and the web
may import daemon constants but not the other way round.

A key a language lacks falls back to English, and a key English lacks to the
key itself: said once in the log, never an exception (a text must not stop a
page or the daemon). tests/test_i18n.py fails when French lacks a key or a
translation's placeholders differ from the English ones.
"""

import json
import logging
import os
import string

log = logging.getLogger("gateway.i18n")

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
_WARNED_MAX = 512            # the "logged once" memory is bounded: a language name comes from outside


def catalogue_files(language):
    """The catalogue files of ``language``, in a fixed order."""
    folder = os.path.join(LOCALE_DIR, language)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name.endswith(".json")]


def _load(language):
    merged = {}
    for path in catalogue_files(language):
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
        if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in table.items()):
            raise ValueError("%s: a catalogue is one JSON object of key: text" % path)
        twice = sorted(set(table) & set(merged))
        if twice:
            raise ValueError("%s: keys already in another file: %s" % (path, ", ".join(twice[:5])))
        merged.update(table)
    return merged


CATALOGUES = dict((language, _load(language)) for language in LANGUAGES)
_warned = set()


def _warn_once(what, *args):
    key = (what,) + args
    if key in _warned or len(_warned) >= _WARNED_MAX:
        return
    _warned.add(key)
    log.warning(what, *args)


def language_of(language):
    """A supported language for whatever a client asked ("fr", "FR", "fr-CA" → "fr"; else English)."""
    if isinstance(language, str):
        short = language.strip().lower()[:2]
        if short in CATALOGUES:
            return short
    return DEFAULT_LANGUAGE


def has(key, language=DEFAULT_LANGUAGE):
    return key in CATALOGUES.get(language, ())


def text(key, language=DEFAULT_LANGUAGE, **params):
    """The text of ``key`` in ``language`` with ``params`` put in its ``{placeholders}``."""
    language = language_of(language)
    template = CATALOGUES[language].get(key)
    if template is None:
        template = CATALOGUES[DEFAULT_LANGUAGE].get(key)
        if template is None:
            _warn_once("message catalogue: no text for %r", key)
            return key
        _warn_once("message catalogue: no %s text for %r, English used", language, key)
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError) as exc:
        _warn_once("message catalogue: %r in %s does not fit its parameters (%s)", key, language, exc)
        return template


def placeholders(template):
    """The names of a template's ``{placeholders}`` (what a translation must keep)."""
    return set(field for _literal, field, _spec, _conv in string.Formatter().parse(template) if field is not None)


class Message:
    """A catalogue text not yet put in a language: its key and parameters; ``str()`` is the English text."""
    __slots__ = ("key", "params")

    def __init__(self, key, **params):
        self.key = key
        self.params = params

    def text(self, language=DEFAULT_LANGUAGE):
        """The text in ``language``; a parameter that is a Message itself is put in the same language."""
        params = dict((name, value.text(language) if isinstance(value, Message) else value)
                      for name, value in self.params.items())
        return text(self.key, language, **params)

    def __str__(self):
        return self.text(DEFAULT_LANGUAGE)

    def __repr__(self):
        return "Message(%r, %r)" % (self.key, self.params)
