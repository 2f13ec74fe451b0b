"""The collector: one export file per device and data type, covering exactly the points not yet exported.

Which stored series belong to a data type: the store names curves ``kind/device uid/load/key``
(daemon/runtime/curves.py); energy indexes are the ``consumption`` counter series (written as their indexes,
in Wh), measurement histories the ``history`` series, load curves the ``load_curve`` series (``KINDS``).

**No gap, no duplicate**: each (data type, device) has a *cursor*, the end of the last range handed over. A file
covers the point start times in [cursor, end) where end = min(``until``, the end of the device's newest stored
point): points are stored complete and a device's series of one kind are committed together, so a point can only
appear after the cursor (a communication cut leaves the cursor at the cut; the back-filled points follow it). The
cursor moves only on ``commit`` (after the files are in the spool), so a render that is not committed is rendered
again, the same, next time; ``reconcile`` at start takes the files still in the spool into account (a cut between
the spool and the commit). Cursors live in one small JSON file in the state directory, replaced atomically.
The first export of a device starts at its oldest point held.

Files are rendered in the executor (``Door.render_series``): rows stream from the store newest first, window by
window, so a year of data goes through bounded memory; each file is fsynced before it is handed over.
"""

import asyncio
import logging
import os

from core import registry
from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from outbound.export import formats

log = logging.getLogger("gateway.export")

DATA_TYPES = ("energy", "measurements", "load_curves")          # the settings' push.schedule.<type> names
KINDS = {"energy": "consumption", "measurements": "history", "load_curves": "load_curve"}
STATE_FILE = "export_cursors.json"
DEFAULT_SITE = "SITE"                                            # SPEC §5: EMS refuses to export under it
SCHEDULE_CYCLE_S = {"daily": 86400, "weekly": 7 * 86400}         # "every": every_min; "off": N/A
_ORDER = dict((key, n) for n, key in enumerate(registry.keys()))


class SiteNotNamed(Exception):
    """EMS format with the site name still "SITE": nothing is rendered (the service raises alarm 6).
    ``text``: the alarm's detail as a catalogue key (daemon/locale/*/export_formats.json) for Door.report_alarm."""

    def __init__(self):
        Exception.__init__(self, "EMS export needs a site name other than %s: nothing was exported" % DEFAULT_SITE)
        self.text = {"key": "export.site_not_named", "params": {"site": DEFAULT_SITE}}


class ExportFile:
    """One rendered file: its name, where it is (in tmp_dir), what it covers ([start, end) of point start times)
    and how many data rows it holds."""

    __slots__ = ("name", "path", "data_type", "device", "start", "end", "rows")

    def __init__(self, name, path, data_type, device, start, end, rows):
        self.name = name
        self.path = path
        self.data_type = data_type
        self.device = device
        self.start = start
        self.end = end
        self.rows = rows

    def as_dict(self):
        return dict((slot, getattr(self, slot)) for slot in self.__slots__)

    def __repr__(self):
        return "ExportFile(%s, %s..%s, %d rows)" % (self.name, self.start, self.end, self.rows)


def _cursor_key(data_type, device):
    return "%s/%s" % (data_type, device)


class Collector:
    """Renders the files of one data type for every device with new points; ``commit`` moves the cursors."""

    def __init__(self, door, tmp_dir):
        self.door = door
        self.tmp_dir = tmp_dir
        self.path = door.state_path(STATE_FILE)
        self.cursors = self._load()
        self._lock = asyncio.Lock()

    def _load(self):
        try:
            doc = read_json(self.path, {})
        except (OSError, ValueError) as exc:
            log.error("export cursors unreadable (%s): every device starts again at its oldest point", exc)
            return {}
        if not isinstance(doc, dict):
            return {}
        return dict((k, v) for k, v in doc.items() if isinstance(k, str) and isinstance(v, (int, float)))

    def cursor(self, data_type, device):
        return self.cursors.get(_cursor_key(data_type, device))

    # ------------------------------------------------------------ the gateway's facts

    def _offset_s(self):
        setting = self.door.setting
        return (setting("time.utc_offset_min") + (60 if setting("time.dst") else 0)) * 60

    def _transfer_cycle_s(self, data_type):
        mode = self.door.setting("push.schedule.%s.mode" % data_type)
        if mode == "every":
            return self.door.setting("push.schedule.%s.every_min" % data_type) * 60
        return SCHEDULE_CYCLE_S.get(mode)

    def _usages(self):
        """{usage key: (CSV word, EMS Use code)}: a predefined usage shows its key (the annex: "Heating"), a
        custom one its name; Use<n> is its place in the Usages list (1 = Undefined)."""
        out = {}
        for n, usage in enumerate(self.door.devices_catalogue()["usages"]):
            out[usage["key"]] = (usage.get("name") or usage["key"], "Use%d" % (n + 1))
        return out

    # ------------------------------------------------------------ render, commit, reconcile

    async def render(self, data_type, until, now):
        """[ExportFile] for every device with points not yet exported before ``until``; ``now``: the export
        time in the file names. SiteNotNamed in EMS format with the default site name."""
        if data_type not in DATA_TYPES:
            raise ValueError("data type must be one of %s" % (DATA_TYPES,))
        door = self.door
        ems = door.setting("push.format") == "ems"
        site = door.setting("push.site_name")
        if ems and site == DEFAULT_SITE:
            raise SiteNotNamed()
        server = door.setting("push.server_name") or door.identity()["netid"]
        offset_s = self._offset_s()
        cycle_s = self._transfer_cycle_s(data_type)
        kind = KINDS[data_type]
        by_device = {}
        for entry in await door.series_catalogue():
            if entry["kind"] == kind and entry["newest"] is not None:
                by_device.setdefault(entry["device"], []).append(entry)
        devices = dict((d.uid, d) for d in door.devices())
        circuits = dict(((c["address"], c["load"]), c) for c in door.circuits())
        usages = self._usages()
        files, names = [], set()
        for uid in sorted(by_device):
            device = devices.get(uid)
            if device is None:
                continue                  # no longer in the topology: its stored points are not exported
            entries = sorted(by_device[uid], key=lambda e: (e["load"], _ORDER.get(e["key"], len(_ORDER)), e["key"]))
            entries = [e for e in entries if e["key"] in _ORDER]
            if not entries:
                continue
            start = self.cursor(data_type, uid)
            if start is None:
                start = min(e["first"] for e in entries)
            end = min(until, max(e["newest"] + e["period_s"] for e in entries))
            if end <= start:
                continue
            columns = []
            for e in entries:
                circuit = circuits.get((device.address, e["load"]), {})
                usage, use = usages.get(circuit.get("usage"), (circuit.get("usage") or "Undefined", "Use1"))
                columns.append(formats.Column(e["name"], e["key"], e["load"], circuit.get("name", ""), usage, use,
                                              circuit.get("fluid", "electricity")))
            header = formats.Header(site, server, device.name, device.address, offset_s=offset_s,
                                    transfer_cycle_s=cycle_s)
            name = formats.file_name(site, server, device.name, data_type, now, offset_s)
            if name in names:                                  # two devices whose names read the same
                name = formats.file_name(site, server, "%s@%d" % (device.name, device.address), data_type, now,
                                         offset_s)
            names.add(name)
            path = os.path.join(self.tmp_dir, name)
            shift = entries[0]["period_s"] if data_type == "energy" else 0
            rows = await door.render_series([c.series for c in columns], start, end,
                                            _renderer(path, header, columns, data_type, ems, start, end, shift),
                                            indexes=data_type == "energy", newest_first=True)
            if rows == 0:
                await _remove(path)
                continue
            files.append(ExportFile(name, path, data_type, uid, start, end, rows))
        return files

    async def commit(self, files):
        """The cursors move past ``files`` (now safe in the spool); one atomic write of the cursor file."""
        async with self._lock:
            changed = self._advance((f.data_type, f.device, f.end) for f in files)
            if changed:
                await run_blocking(write_json, self.path, dict(self.cursors))

    def reconcile(self, spooled):
        """At start: cursor = max(stored cursor, end of the files still in the spool) for each (data type,
        device); ``spooled``: dicts with "data_type", "device", "end". Written at once when it changed (a small
        file, at start only: the cut between spooling and committing is rare)."""
        changed = self._advance((d["data_type"], d["device"], d["end"]) for d in spooled)
        if changed:
            write_json(self.path, dict(self.cursors))
        return changed

    def _advance(self, ends):
        changed = False
        for data_type, device, end in ends:
            key = _cursor_key(data_type, device)
            if self.cursors.get(key) is None or end > self.cursors[key]:
                self.cursors[key] = end
                changed = True
        return changed


def _renderer(path, header, columns, data_type, ems, start, end, shift):
    """The blocking part: write one file from the store's rows (runs in the executor) and fsync it."""
    def render(read):
        with open(path, "w", encoding="utf-8", newline="") as stream:
            if ems:
                names = [c.series for c in columns]
                count = formats.write_ems(stream, header, columns, data_type, lambda i: read([names[i]]), shift)
            else:
                count = formats.write_csv(stream, header, columns, start, end, read(), shift)
            stream.flush()
            os.fsync(stream.fileno())
        return count
    return render


async def _remove(path):
    try:
        await run_blocking(os.remove, path)
    except FileNotFoundError:
        pass
