"""The stored curves as the views read them: Trends and Consumption (issue 17).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from core import registry
from daemon.blocking import run_blocking
from daemon.door.base import RIGHTS, BAD_VALUE, NOT_FOUND, UNSUPPORTED, STORAGE, Refused
from daemon.runtime import curves
from daemon.state import (favourites,
                          hierarchies as hierarchies_mod)
from daemon.storage import consumption as consumption_mod, store as store_mod
from daemon.storage.format import Q_VALID, quality_name
from daemon.storage.query import SeriesData

log = logging.getLogger("gateway.api")


# ---------------------------------------------------------------- issue 17: trends (Door.trend_series)
TREND_CATEGORIES = {"load_curve": "measure", "history": "measure", "consumption": "meter"}   # manual §8.6
TREND_STEPS = ("raw", "hour", "day", "week", "month")
TREND_BUCKET_S = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}   # the shortest of each
TREND_MAX_NAMES = favourites.MAX_SERIES          # series in one request (one chart)
TREND_MAX_POINTS = 100_000                       # points in one answer: 10 series of a leap year of hours fit


def _compact(value):
    """A float32 widened to a double, said with its own 7 significant digits (230.1, not 230.10000610351562)."""
    return None if value is None else float("%.7g" % value)


def _trend_answer(data, period_s):
    """One series of Door.trend_series from the store's SeriesData (raw) or Aggregate."""
    if isinstance(data, SeriesData):
        quality = data.quality
        names = dict((code, quality_name(code)) for code in set(quality))       # a few codes, named once
        return {"name": data.name, "step": "raw", "counter": data.counter, "period_s": period_s,
                "t": data.times(), "v": [_compact(v) if quality[i] & Q_VALID else None
                                         for i, v in enumerate(data.values)],
                "q": [names[q] for q in quality]}
    out = {"name": data.name, "step": data.step, "counter": data.counter, "period_s": period_s,
           "t": list(data.times), "v": [_compact(v) for v in data.values],
           "q": [data.quality(i) for i in range(len(data.times))], "count": list(data.counts)}
    if not data.counter:
        out["min"] = [_compact(v) for v in data.minimum]
        out["max"] = [_compact(v) for v in data.maximum]
    return out


# ---------------------------------------------------------------- issue 17: consumption (Door.consumption)
CONSUMPTION_KEYS = store_mod.CONSUMPTION_KEYS      # the consumption curves' counters (Ea+, Ea-, Er+, Er-, Es)
CONSUMPTION_STEPS = consumption_mod.STEPS
CONSUMPTION_MAX_LOADS = 256                       # circuits in one request: the 192 of the reference site fit
CONSUMPTION_MAX_VALUES = 200_000                  # buckets x loads in one answer: 192 loads x a month of hours


class SeriesPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ issue 17: trends
    # The Trends page reads the stored curves as the exports do (series_catalogue above is the push's), but for
    # a web profile, aggregated in local-time buckets and bounded so one answer draws one chart; and each
    # profile keeps its favourite selections (daemon/state/favourites.py).

    async def trend_catalogue(self):
        """Every stored curve of a device of the topology: name, kind, category ("measure": load curves and
        the meters' histories; "meter": consumption), key, unit, name (the registry's English words), address,
        device, reference, load, load_name, period_s, counter, first, newest."""
        self._check("read_trends")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            return []
        devices = dict((d.uid, d) for d in self._gw.topology.devices)
        out = []
        for name, info in sorted((await run_blocking(storage.store.series)).items()):
            try:
                kind, uid, load, key = curves.parse_series_name(name)
                row = registry.get(key)
            except (ValueError, KeyError):
                continue                                   # not a curve of ours (a tool's series)
            device = devices.get(uid)
            if device is None:
                continue                                   # a device no longer in the topology
            load_row = next((x for x in device.loads if x["load"] == load), {})
            out.append(dict(info, name=name, kind=kind, category=TREND_CATEGORIES[kind], key=key,
                            unit=row[registry.UNIT], label=row[registry.NAME], address=device.address,
                            device=device.name, reference=device.reference, load=load,
                            load_name=load_row.get("name", "")))
        return out

    async def trend_series(self, names, start, end, step):
        """{"utc_offset_s", "step", "series": [{name, step, counter, period_s, t, v, q[, min, max, count]}]}:
        the points of ``names`` whose interval starts in [start, end), raw (``step`` "raw") or in local-time
        buckets ("hour", "day", "week", "month": sums for counters, means with min/max for gauges; q "good",
        "partial", "missing"). A raw point's q is the store's quality name ("missing" has v None).
        Refused(BAD_VALUE) past TREND_MAX_NAMES series or TREND_MAX_POINTS points in one answer (details: a
        catalogue key saying which), Refused(NOT_FOUND) for a series the store does not hold."""
        self._check("read_trends")
        names = list(names)
        if step not in TREND_STEPS:
            raise Refused(BAD_VALUE, "step must be one of %s" % ", ".join(TREND_STEPS))
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise Refused(BAD_VALUE, "from and to must be Unix seconds with from < to")
        if not 1 <= len(names) <= TREND_MAX_NAMES or len(set(names)) != len(names):
            raise Refused(BAD_VALUE, "ask for 1 to %d different series at a time" % TREND_MAX_NAMES,
                          [{"field": "names", "key": "web.trends.error.too_many_series",
                            "params": {"max": TREND_MAX_NAMES}}])
        storage = self._gw.storage
        if storage is None or not storage.ready:
            raise Refused(UNSUPPORTED, "the time-series store is not available")
        held = await run_blocking(storage.store.series)
        unknown = [n for n in names if n not in held]
        if unknown:
            raise Refused(NOT_FOUND, "no stored series %s" % ", ".join(unknown))
        points = sum(-(-(end - start) // (held[n]["period_s"] if step == "raw" else TREND_BUCKET_S[step]))
                     for n in names)
        if points > TREND_MAX_POINTS:
            raise Refused(BAD_VALUE, "%d points asked for, more than the %d one answer holds: choose a coarser "
                          "step or a shorter period" % (points, TREND_MAX_POINTS),
                          [{"field": "step", "key": "web.trends.error.too_many_points",
                            "params": {"points": points, "max": TREND_MAX_POINTS}}])
        offset, store = self.local_offset_s(), storage.store

        def read():
            found = store.query(names, start, end, None if step == "raw" else step, offset)
            return [_trend_answer(found[n], held[n]["period_s"]) for n in names]
        return {"utc_offset_s": offset, "step": step, "from": start, "to": end, "series": await run_blocking(read)}

    def _favourites_owner(self):
        self._check("trend_favourites")
        if self.caller.protocol != "web":
            raise Refused(RIGHTS, "favourites belong to a web profile")
        return self._gw.state_dir, self.caller.profile

    async def trend_favourites(self):
        """This caller's profile's favourites (each {name, series, period, step, mode, scale, table})."""
        state_dir, profile = self._favourites_owner()
        return await run_blocking(favourites.listing, state_dir, profile)

    async def save_trend_favourite(self, favourite):
        """Save ``favourite`` for this caller's profile (one of the same name is replaced): {favourite,
        replaced}. Refused(BAD_VALUE) with the field and catalogue key; Refused(STORAGE) when not written."""
        state_dir, profile = self._favourites_owner()
        try:
            stored, replaced = await run_blocking(favourites.save, state_dir, profile, favourite)
        except favourites.FavouriteRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) \
                from None
        except OSError as exc:
            raise Refused(STORAGE, "the favourites could not be written: %s" % exc.strerror) from None
        return {"favourite": stored, "replaced": replaced}

    async def delete_trend_favourite(self, name):
        """Delete this caller's profile's favourite ``name``; Refused(NOT_FOUND) when it has none."""
        state_dir, profile = self._favourites_owner()
        try:
            deleted = await run_blocking(favourites.delete, state_dir, profile, name)
        except OSError as exc:
            raise Refused(STORAGE, "the favourites could not be written: %s" % exc.strerror) from None
        if not deleted:
            raise Refused(NOT_FOUND, "no favourite named %r" % (name,))

    # ================================================================ issue 17: consumption
    # The Consumption page (manual §8.5): the energy of the selected loads in one shared grid of local-time
    # buckets, summed here (daemon/storage/consumption.py) so the browser never gets the raw points; a
    # hierarchy's node as its children plus the non-measured point (daemon/state/hierarchies.py breakdown).

    async def consumption(self, selection, start, end, step, key="ea_pos"):
        """{utc_offset_s, step, from, to, key, unit, period_s, buckets: [[start, end]], node, loads}: ``key``'s
        consumption (a CONSUMPTION_KEYS counter) over [start, end) in ``step`` buckets (CONSUMPTION_STEPS;
        "period" is the finest integration period of the loads read). ``selection``: {"circuits": ["4:1", ...]}
        (each a load: {id, kind "circuit", circuit, address, load, device, reference, name, v, q}) or
        {"hierarchy": id, "node": item id} (``node``: {id, name, meter, v, q} of that node, the loads its
        children and the non-measured point, hierarchies.breakdown). v: Wh (varh, VAh) or None, q: good,
        partial, missing. Refused(BAD_VALUE) for a bad key, step, range or selection, or past
        CONSUMPTION_MAX_VALUES values; Refused(NOT_FOUND) for a circuit, hierarchy or node that is not there."""
        self._check("read_consumption")
        if key not in CONSUMPTION_KEYS:
            raise Refused(BAD_VALUE, "data must be one of %s" % ", ".join(CONSUMPTION_KEYS))
        if step not in consumption_mod.STEPS:
            raise Refused(BAD_VALUE, "step must be one of %s" % ", ".join(consumption_mod.STEPS))
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise Refused(BAD_VALUE, "from and to must be Unix seconds with from < to")
        circuits = dict(("%d:%d" % (d.address, x["load"]), (d, x)) for d in self.devices() for x in d.loads)
        hierarchy = None
        if isinstance(selection, dict) and "hierarchy" in selection:
            doc = self._hierarchies().listing()
            hierarchy = next((h for h in doc if h["id"] == selection["hierarchy"]), None)
            if hierarchy is None:
                raise Refused(NOT_FOUND, "no hierarchy %r" % str(selection["hierarchy"])[:40])
            node_id = selection.get("node")
            if not any(i["id"] == node_id and i["kind"] == "node" for i in hierarchy["items"]):
                raise Refused(NOT_FOUND, "no node %r in the hierarchy %s" % (str(node_id)[:40], hierarchy["name"]))
            wanted = set()
            hierarchies_mod.breakdown(doc, hierarchy["id"], lambda c: wanted.add(c))
            wanted = sorted(wanted)
        elif isinstance(selection, dict) and isinstance(selection.get("circuits"), list):
            wanted = list(selection["circuits"])
            if not 1 <= len(wanted) <= CONSUMPTION_MAX_LOADS or len(set(wanted)) != len(wanted):
                raise Refused(BAD_VALUE, "ask for 1 to %d different circuits at a time" % CONSUMPTION_MAX_LOADS)
            unknown = [str(c)[:20] for c in wanted if c not in circuits]
            if unknown:
                raise Refused(NOT_FOUND, "no circuit %s in the topology" % ", ".join(unknown[:5]))
        else:
            raise Refused(BAD_VALUE, "the selection is {\"circuits\": [...]} or {\"hierarchy\": id, \"node\": id}")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            raise Refused(UNSUPPORTED, "the time-series store is not available")
        store, offset = storage.store, self.local_offset_s()
        default_period_s = 60 * self._gw.settings.get("storage.consumption_period_min")
        names = dict((c, curves.series_name("consumption", circuits[c][0].uid, circuits[c][1]["load"], key))
                     for c in wanted if c in circuits)

        def read():
            held = store.series()
            periods = [held[n]["period_s"] for n in names.values() if n in held]
            period_s = min(periods) if periods else default_period_s
            shortest = period_s if step == "period" else TREND_BUCKET_S[step]
            if (-(-(end - start) // shortest) + 1) * max(1, len(wanted)) > CONSUMPTION_MAX_VALUES:
                return period_s, -(-(end - start) // shortest), None          # refused before any grid is made
            buckets = consumption_mod.grid(step, start, end, offset, period_s)
            if len(buckets) * max(1, len(wanted)) > CONSUMPTION_MAX_VALUES:
                return period_s, len(buckets), None
            series = {}
            for circuit, name in names.items():
                if name in held:
                    series[circuit] = consumption_mod.bucket_sums(store.read(name, start, end), buckets)
            return period_s, buckets, series
        period_s, buckets, series = await run_blocking(read)
        if series is None:
            raise Refused(BAD_VALUE, "%d buckets of %d loads asked for, more than the %d values one answer holds: "
                          "choose a coarser step or a shorter period" % (buckets, len(wanted),
                                                                          CONSUMPTION_MAX_VALUES),
                          [{"field": "step", "key": "web.consumption.error.too_many",
                            "params": {"max": CONSUMPTION_MAX_VALUES}}])
        missing = ([None] * len(buckets), ["missing"] * len(buckets))
        answer = {"utc_offset_s": offset, "step": step, "from": start, "to": end, "key": key,
                  "unit": registry.get(key)[registry.UNIT], "period_s": period_s,
                  "buckets": [list(b) for b in buckets], "node": None}
        if hierarchy is None:
            answer["loads"] = [dict(self._consumption_circuit(c, circuits), id=c, kind="circuit",
                                    v=series.get(c, missing)[0], q=series.get(c, missing)[1]) for c in wanted]
            return answer
        node, loads = consumption_mod.hierarchy_loads(doc, hierarchy["id"],
                                                      selection["node"], dict((c, series.get(c, missing))
                                                                              for c in wanted))
        for load in loads:
            if load["circuit"]:
                load.update(self._consumption_circuit(load["circuit"], circuits))
        node["meter_name"] = self._consumption_circuit(node["meter"], circuits)["name"] if node["meter"] else None
        answer.update(node=node, loads=loads, hierarchy={"id": hierarchy["id"], "name": hierarchy["name"],
                                                         "fluid": hierarchy["fluid"]})
        return answer

    @staticmethod
    def _consumption_circuit(circuit, circuits):
        """What names a circuit on the page (one no longer in the topology: its key alone)."""
        if circuit not in circuits:
            return {"circuit": circuit, "address": None, "load": None, "device": "", "reference": "", "name": ""}
        device, load = circuits[circuit]
        return {"circuit": circuit, "address": device.address, "load": load["load"], "device": device.name,
                "reference": device.reference, "name": load.get("name", "")}
