"""The Trends page (WEBVIEW-M manual §8.6, issue 17) and the series API behind it, over the door.

``GET /api/series/catalogue``: what the store holds for each device and load of the topology (kind, category,
key, unit, the data's name in the reader's language, period, first and newest points). ``GET /api/series?
names=a,b&from=&to=&step=raw|hour|day|week|month``: their points, aggregated in the gateway's local-time
buckets by the store (sums for counters, means with min/max for gauges, each bucket's quality), bounded by the
door (series per request, points per answer: a clear 400 past them), so a browser never downloads a year of
raw points to draw a month. Both are User's reads (``read_trends``). ``GET/POST /api/trends/favourites`` and
``POST /api/trends/favourites/delete``: the session's profile's favourite selections (``trend_favourites``).
The page ``/trends`` (static/trends.*) draws them with the vendored uPlot (static/vendor/).
"""

import bottle

from daemon import api, i18n
from webconfig import auth, home_pages
from webconfig.jsonio import body as _body, deferred

MAX_QUERY = 4096                     # characters of the names parameter (12 names of at most 128 characters fit)


def _label(key, language, english):
    """The data's name in the reader's language (the Monitor's words for a measurement), else the registry's."""
    catalogue_key = "web.status.measure." + key
    return i18n.text(catalogue_key, language) if i18n.has(catalogue_key) else english


def _refusal(exc, language):
    return auth.refusal(exc.reason, language, str(exc), exc.details)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def mount(app, door, static):
    """Add the Trends page and its routes to ``app`` over the door; ``static(name)`` serves an asset."""

    @app.get("/trends", access="public")
    def trends_page():
        return home_pages.view_gate(door, "trends.html", static)      # a live session, else the login page

    @app.get("/api/series/catalogue", access="read", command="read_trends")
    @deferred
    async def series_catalogue():
        bound, language = auth.door(), auth.language()
        try:
            rows = await bound.trend_catalogue()
        except api.Refused as exc:
            return _refusal(exc, language)
        for row in rows:
            row["label"] = _label(row["key"], language, row["label"])
        return 200, {"series": rows, "steps": list(api.TREND_STEPS), "max_names": api.TREND_MAX_NAMES,
                     "max_points": api.TREND_MAX_POINTS, "utc_offset_s": bound.local_offset_s()}

    @app.get("/api/series", access="read", command="read_trends")
    @deferred
    async def series():
        bound, language, query = auth.door(), auth.language(), bottle.request.query
        raw_names, start, end = query.get("names") or "", _int(query.get("from")), _int(query.get("to"))
        step = query.get("step") or "raw"
        names = [n for n in raw_names.split(",") if n]
        if len(raw_names) > MAX_QUERY or start is None or end is None:
            return auth.refusal("bad_request", language, "expected ?names=a,b&from=<Unix s>&to=<Unix s>&step=%s"
                                % "|".join(api.TREND_STEPS))
        try:
            return 200, await bound.trend_series(names, start, end, step)
        except api.Refused as exc:
            return _refusal(exc, language)

    @app.get("/api/trends/favourites", access="command", command="trend_favourites")
    @deferred
    async def favourites():
        bound, language = auth.door(), auth.language()
        try:
            return 200, {"favourites": await bound.trend_favourites()}
        except api.Refused as exc:
            return _refusal(exc, language)

    @app.post("/api/trends/favourites", access="command", command="trend_favourites")
    @deferred
    async def save_favourite():
        """{name, series, period: {preset[, from, to]}, step, mode, scale, table}: saved for the profile."""
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None:
            return auth.refusal("bad_request", language, "expected a JSON favourite such as {\"name\": \"Boiler\", "
                                "\"series\": [\"load_curve/DC85E9/1/lc_p_pos\"], \"period\": {\"preset\": "
                                "\"this_month\"}}")
        try:
            return 200, dict(await bound.save_trend_favourite(data), ok=True)
        except api.Refused as exc:
            return _refusal(exc, language)

    @app.post("/api/trends/favourites/delete", access="command", command="trend_favourites")
    @deferred
    async def delete_favourite():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or not isinstance(data.get("name"), str):
            return auth.refusal("bad_request", language, "expected {\"name\": \"...\"}")
        try:
            await bound.delete_trend_favourite(data["name"])
        except api.Refused as exc:
            return _refusal(exc, language)
        return 200, {"ok": True}

    return app
