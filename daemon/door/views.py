"""The data views' queries and commands: Home, alarms and events, Monitor, hierarchies, photoviews (issue 17).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from daemon import pictures
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.door.base import BAD_VALUE, BUSY, NOT_FOUND, STORAGE, Refused
from daemon.state import (alarmlog, devstate, hierarchies as hierarchies_mod, photoviews)
from daemon.state.alarms import device_source
from daemon.state.cache import STALE

log = logging.getLogger("gateway.api")


class ViewsPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ issue 17: Home

    def home_summary(self):
        """What the Home page shows live (GET /api/home): the gateway's name and time, the active alarms counted by
        criticality (a system alarm once per source it is active for, a device alarm once), every device's state
        and age. No values: it is polled every few seconds by every open Home page, and the values of a device
        weigh ~8 KB of JSON in /api/status."""
        alarms = {"critical": 0, "non-critical": 0, "information": 0}
        for alarm in self.system_alarms():
            alarms[alarm["criticality"]] = alarms.get(alarm["criticality"], 0) + len(alarm["sources"])
        for alarm in self.device_alarms():
            alarms[alarm["criticality"]] = alarms.get(alarm["criticality"], 0) + 1
        devices = []
        for device in self.devices():
            summary = self.device_summary(device.address)
            devices.append({"address": device.address, "bus": device.bus, "reference": device.reference,
                            "name": device.name, "status": summary.state,
                            "age_s": None if summary.age is None else round(summary.age, 1)})
        return {"gateway": {"name": self.setting("gateway.name"), "time": self.time()}, "alarms": alarms,
                "devices": devices}

    # ================================================================ issue 17: alarms and events
    # The Alarms and events page (SPEC §6, manual §8.3) reads the event log as alarm occurrences, filtered and
    # paged on the gateway (daemon/state/alarmlog.py, in the executor): the browser never gets the whole log.
    # Acknowledging is ``acknowledge_alarm`` (system alarms: the device alarms are acknowledged on the meters).

    def _alarm_inputs(self):
        """What the occurrences are built from, copied on the loop: the log, the live active sets, the names."""
        gw = self._gw
        names = dict((device_source(d.bus, d.address), d.name) for d in gw.topology.devices)
        system_active = dict((key, dict(state)) for key, state in gw.alarms.active.items())
        device_active = dict(gw.device_alarms.active)
        return gw.alarms.events(), system_active, device_active, names, gw.clock.time()

    @staticmethod
    def _alarm_query(params):
        """{name: text} of a request's period, filters and paging -> the checked query, else Refused(BAD_VALUE)."""
        try:
            return alarmlog.parse_query(params)
        except alarmlog.BadQuery as exc:
            raise Refused(BAD_VALUE, str(exc)) from None

    async def alarm_occurrences(self, params):
        """{"total", "page", "size", "rows" (one page, newest first), "active" (occurrences active in the whole
        log), "sources" ([{source, name}] for the filter), "now"} of the occurrences that pass ``params``
        (alarmlog.parse_query: from, to, type, status, category, criticality, source, page, size as texts).
        Refused(BAD_VALUE) for a bad filter, Refused(BUSY) when the executor is full."""
        query = self._alarm_query(params)
        records, system_active, device_active, names, now = self._alarm_inputs()

        def build():
            rows = alarmlog.occurrences(records, system_active, device_active, names, now)
            found = alarmlog.select(rows, query, now)
            return {"total": len(found), "page": query["page"], "size": query["size"],
                    "rows": alarmlog.page_of(found, query), "active": sum(r["status"] == "active" for r in rows),
                    "sources": alarmlog.source_options(rows, names), "now": now}
        try:
            return await run_blocking(build)
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None

    async def alarm_export(self, params):
        """(file name, zip bytes) of every occurrence that passes ``params`` (as ``alarm_occurrences``, paging
        ignored): alarms.csv and events.csv, named after the gateway and the day."""
        query = self._alarm_query(params)
        records, system_active, device_active, names, now = self._alarm_inputs()
        offset, name = self.local_offset_s(), self._gw.settings.get("gateway.name")

        def build():
            rows = alarmlog.occurrences(records, system_active, device_active, names, now)
            return alarmlog.export_zip(alarmlog.select(rows, query, now), offset, name, now)
        try:
            return await run_blocking(build)
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None

    # ================================================================ issue 17: the Monitor view
    # The Monitor page's long-poll (webconfig/monitor_live.py) answers after every batch a poller stores for the
    # watched load: it reads that one row, not every load of the device as ``snapshot`` and ``device_summary`` do.

    def monitor_row(self, address, load):
        """({key: Reading} of one load's row (load 0: the device's own values), the device's state as
        ``device_summary`` says it but judged on this row (its link; stale when a value of the row is))."""
        cache = self._gw.cache
        readings = cache.row(address, load)
        stale = any(reading.quality == STALE for reading in readings.values())
        return readings, devstate.device_state(self.device_link(address), stale)

    # ================================================================ issue 17: hierarchies
    # The hierarchies (manual §9.7, daemon/state/hierarchies.py): every profile reads them (the Consumption
    # page's organisation), Admin and Cyber Security change them, one operation at a time.

    def _hierarchies(self):
        return self._gw.hierarchies

    def hierarchies(self):
        """[{id, name, fluid, items: [{id, kind, parent, name/circuit/ref[, meter]}]}], the limits."""
        self._check("read_consumption")
        return {"hierarchies": self._hierarchies().listing(), "max_hierarchies": hierarchies_mod.MAX_HIERARCHIES,
                "max_nodes": hierarchies_mod.MAX_NODES, "max_circuits": hierarchies_mod.MAX_CIRCUITS}

    async def change_hierarchies(self, change):
        """Apply one change ({op: create|rename|delete|add|meter|move|remove, ...}); what it returns (a new
        hierarchy's or item's id). Refused(BAD_VALUE) with the field and catalogue key of the rule it breaks,
        Refused(STORAGE) when not written."""
        self._check("edit_hierarchies")
        circuits = dict(("%d:%d" % (c["address"], c["load"]), c["fluid"]) for c in self.circuits())
        try:
            result = await self._hierarchies().change(change, circuits)
        except hierarchies_mod.HierarchyRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) \
                from None
        except OSError as exc:
            raise Refused(STORAGE, "the hierarchies could not be written: %s" % exc.strerror) from None
        log.info("%r changed the hierarchies: %s", self.caller, change.get("op"))
        return result

    # ================================================================ issue 17: photoview
    # The photoview pages (SPEC §7.2, manual §8.4/§9.8: daemon/state/photoviews.py): every profile reads them,
    # Admin and Cyber Security make them. Their live values are the Monitor's (monitor_row), read by the page.

    async def _photoview_call(self, command, func, *args):
        """``func(state_dir, *args)`` in the executor once ``command`` is allowed; the store's refusals as the
        door's (BAD_VALUE with the field and catalogue key, NOT_FOUND for an unknown page)."""
        self._check(command)
        try:
            return await run_blocking(func, self._gw.state_dir, *args)
        except photoviews.PhotoviewRefused as exc:
            reason = NOT_FOUND if exc.key == "web.photoview.error.no_page" else BAD_VALUE
            raise Refused(reason, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) from None
        except pictures.PictureRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "file", "key": exc.key, "params": exc.params}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the photoview could not be written: %s" % exc.strerror) from None

    def photoview_limits(self):
        """The bounds the editor says and the store applies."""
        most, widest, tallest = photoviews.BACKGROUND
        return {"pages": photoviews.MAX_PAGES, "widgets": photoviews.MAX_WIDGETS, "name": photoviews.MAX_NAME,
                "text": photoviews.MAX_TEXT, "keys": photoviews.MAX_KEYS, "canvas": list(photoviews.DEFAULT_CANVAS),
                "background": {"bytes": most, "width": widest, "height": tallest}}

    async def photoview_pages(self):
        """Every page ({id, name, background, widgets}) with its canvas size (the background's, else the default)."""
        pages = await self._photoview_call("read_photoviews", photoviews.listing)
        for page in pages:
            page["canvas"] = list(photoviews.canvas(page))
        return pages

    async def create_photoview(self, name):
        page = await self._photoview_call("edit_photoviews", photoviews.create, name)
        log.info("photoview page %s (%r) made by %r", page["id"], page["name"], self.caller)
        return page

    async def save_photoview(self, page_id, name, widgets):
        """Replace a page's name and widgets, every widget checked (nothing written on a refusal)."""
        page = await self._photoview_call("edit_photoviews", photoviews.save, page_id, name, widgets)
        log.info("photoview page %s saved by %r: %d widgets", page_id, self.caller, len(page["widgets"]))
        return page

    async def delete_photoview(self, page_id):
        await self._photoview_call("edit_photoviews", photoviews.delete, page_id)
        log.info("photoview page %s deleted by %r", page_id, self.caller)

    async def set_photoview_background(self, page_id, declared_type, path):
        """The uploaded file at ``path`` (spooled to disk) as the page's background once checked."""
        def from_file(state_dir, page_id, declared_type, path):
            with open(path, "rb") as handle:
                data = handle.read(photoviews.BACKGROUND[0] + 1)
            return photoviews.set_background(state_dir, page_id, declared_type, data)
        info = await self._photoview_call("edit_photoviews", from_file, page_id, declared_type, path)
        log.info("photoview page %s background set by %r: %s %dx%d, %d bytes", page_id, self.caller,
                 info["type"], info["width"], info["height"], info["size"])
        return info

    async def photoview_background(self, page_id):
        """(info, bytes) of a page's background, or None."""
        return await self._photoview_call("read_photoviews", photoviews.background, page_id)

    def photoview_devices(self):
        """What the editor offers: each device's loads and the values its rows hold ({address, name, loads:
        [{load, name, keys}]}); load 0 is a device's own values (an I/O block)."""
        self._check("edit_photoviews")
        out = []
        for device in self.devices():
            names = dict((entry["load"], entry.get("name") or "") for entry in device.loads)
            loads = [{"load": load, "name": names.get(load, ""),
                      "keys": sorted(self._gw.cache.keys(device.address, load))}
                     for load in sorted(set(names) | set(self.loads(device.address)))]
            out.append({"address": device.address, "name": device.name, "reference": device.reference,
                        "loads": loads})
        return out

    # ================================================================ issue 17: drag and drop (photoview, hierarchies)
    # The Photoview editor's "drop by location" (manual §9.8: "all the devices from one location") and its resize
    # handle's least size. The hierarchies' drag and drop needs nothing new: a drop sends change_hierarchies.

    def photoview_areas(self):
        """{areas: [{area, addresses}] (each area of the topology in the order of its first device, then "" for the
        devices without one), min_size: the least width and height of an area or icon (the store's)}."""
        self._check("edit_photoviews")
        areas = {}
        for device in self.devices():
            areas.setdefault(device.area or "", []).append(device.address)
        ordered = sorted(areas.items(), key=lambda pair: pair[0] == "")
        return {"areas": [{"area": area, "addresses": addresses} for area, addresses in ordered],
                "min_size": photoviews.MIN_AREA}
