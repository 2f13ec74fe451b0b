"""The Trends page's favourites (WEBVIEW-M manual §7.4): each web profile's saved selections, one small file.

A favourite freezes what the Trends page shows: its data (stored series names), time period, step and
rendering options, under a name, so it reopens the same chart later. They belong to a *profile* (Admin's are
not User's: the manual's favourites live in the user's session settings), so the file is keyed by profile.
Blocking (file I/O): the door calls these in the executor; one lock makes each read-change-write whole, so
two browsers saving at once lose nothing. A favourite is checked field by field (``FavouriteRefused`` names the
field and a catalogue key) before anything is written.
"""

import os
import threading

from daemon.atomicfile import read_json, write_json

FILE_NAME = "trend-favourites.json"
MAX_FAVOURITES = 20                  # per profile
MAX_NAME = 40                        # characters of a favourite's name
MAX_SERIES = 12                      # the series one chart may show (the series API's bound per request)
MAX_SERIES_NAME = 128                # a store series name (daemon/storage/store.py Series)
STEPS = ("auto", "raw", "hour", "day", "week", "month")
PRESETS = ("today", "yesterday", "this_week", "last_7_days", "this_month", "last_month", "this_year",
           "last_12_months", "custom")                                       # static/pane.js PERIOD_PRESETS
MODES = ("overlay", "stack")
SCALES = ("auto", "zero")

_lock = threading.Lock()


class FavouriteRefused(Exception):
    """A favourite not saved: ``field``, catalogue ``key`` and ``params`` say why (the page's words)."""

    def __init__(self, message, field, key, **params):
        Exception.__init__(self, message)
        self.field, self.key, self.params = field, key, params


def _path(state_dir):
    return os.path.join(state_dir, FILE_NAME)


def _profiles(state_dir):
    try:
        doc = read_json(_path(state_dir), {}) or {}
    except ValueError:                       # a damaged file: the favourites are lost, the page still works
        doc = {}
    profiles = doc.get("profiles") if isinstance(doc, dict) else None
    return profiles if isinstance(profiles, dict) else {}


def listing(state_dir, profile):
    """The profile's favourites, in the order they were saved."""
    with _lock:
        rows = _profiles(state_dir).get(profile)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _clean_name(name):
    if not isinstance(name, str) or not name.strip():
        raise FavouriteRefused("a favourite needs a name", "name", "web.trends.error.name_empty")
    name = name.strip()
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise FavouriteRefused("a favourite's name is at most %d printable characters" % MAX_NAME, "name",
                               "web.trends.error.name_long", max=MAX_NAME)
    return name


def checked(favourite):
    """The favourite as stored (only the known fields), or FavouriteRefused."""
    if not isinstance(favourite, dict):
        raise FavouriteRefused("a favourite is a JSON object", "name", "web.trends.error.bad_favourite")
    name = _clean_name(favourite.get("name"))
    series = favourite.get("series")
    if not isinstance(series, list) or not 1 <= len(series) <= MAX_SERIES or not all(
            isinstance(s, str) and 0 < len(s) <= MAX_SERIES_NAME for s in series) or len(set(series)) != len(series):
        raise FavouriteRefused("a favourite holds 1 to %d different data" % MAX_SERIES, "series",
                               "web.trends.error.series_count", max=MAX_SERIES)
    period = favourite.get("period")
    if not isinstance(period, dict) or period.get("preset") not in PRESETS:
        raise FavouriteRefused("the period must be one of %s" % ", ".join(PRESETS), "period",
                               "web.trends.error.bad_favourite")
    kept_period = {"preset": period["preset"]}
    if period["preset"] == "custom":
        start, end = period.get("from"), period.get("to")
        if type(start) not in (int, float) or type(end) not in (int, float) or not 0 <= start < end < 2 ** 33:
            raise FavouriteRefused("a custom period needs from < to (Unix seconds)", "period",
                                   "web.trends.error.bad_favourite")
        kept_period.update({"from": int(start), "to": int(end)})
    options = {"step": favourite.get("step", "auto"), "mode": favourite.get("mode", "overlay"),
               "scale": favourite.get("scale", "auto")}
    for field, allowed in (("step", STEPS), ("mode", MODES), ("scale", SCALES)):
        if options[field] not in allowed:
            raise FavouriteRefused("%s must be one of %s" % (field, ", ".join(allowed)), field,
                                   "web.trends.error.bad_favourite")
    table = favourite.get("table", False)
    if not isinstance(table, bool):
        raise FavouriteRefused("table must be true or false", "table", "web.trends.error.bad_favourite")
    return dict(options, name=name, series=list(series), period=kept_period, table=table)


def save(state_dir, profile, favourite):
    """Add ``favourite`` to the profile's (replacing one of the same name); returns (stored, replaced)."""
    stored = checked(favourite)
    with _lock:
        profiles = _profiles(state_dir)
        rows = [r for r in profiles.get(profile, []) if isinstance(r, dict)]
        replaced = any(r.get("name") == stored["name"] for r in rows)
        if not replaced and len(rows) >= MAX_FAVOURITES:
            raise FavouriteRefused("at most %d favourites per profile: delete one first" % MAX_FAVOURITES, "name",
                                   "web.trends.error.too_many_favourites", max=MAX_FAVOURITES)
        rows = [stored if r.get("name") == stored["name"] else r for r in rows] + ([] if replaced else [stored])
        profiles[profile] = rows
        write_json(_path(state_dir), {"profiles": profiles})
    return stored, replaced


def delete(state_dir, profile, name):
    """Remove the profile's favourite ``name``; False when it had none of that name."""
    with _lock:
        profiles = _profiles(state_dir)
        rows = [r for r in profiles.get(profile, []) if isinstance(r, dict)]
        kept = [r for r in rows if r.get("name") != name]
        if len(kept) == len(rows):
            return False
        profiles[profile] = kept
        write_json(_path(state_dir), {"profiles": profiles})
    return True
