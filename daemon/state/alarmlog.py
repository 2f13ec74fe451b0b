"""The event log read as alarm *occurrences*, filtered and exported (the Alarms and events page, issue 17).

The log (daemon/state/alarms.py) keeps one record per change: a system alarm's
"raised", "still_active", "acknowledged", "cleared"; a device alarm's "start"
and "end" (daemon/runtime/device_alarms.py). The page shows one row per
occurrence (start, end, status, acknowledgement), so the records are paired
here: a "still_active" whose "raised" was overwritten still opens its row, an
"end" whose "start" was overwritten (or never logged: a meter's history) gives
a finished row from the start the end record carries. The live active sets
have the last word on what is active (a restart's unconfirmed alarm cleared,
a record still queued). Everything here is blocking work on plain data: the
door runs it in the executor.
"""

import csv
import datetime
import io
import re
import zipfile

from daemon.state.alarms import SYSTEM_ALARMS

# the type filter: system alarms (SPEC §6's eight), device alarms (thresholds, logical, combined, device's own),
# EN 50160 events (the meters' power-quality events)
TYPES = ("system", "device", "en50160")
STATUSES = ("active", "finished", "acknowledged", "not_acknowledged")
CATEGORIES = ("system", "threshold", "logical", "combined", "device", "power_quality")
CRITICALITIES = ("information", "non-critical", "critical")
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

# one CSV column per row field, in order: (header, how it is written)
CSV_COLUMNS = (
    ("start", lambda row, fmt: fmt(row["start"])),
    ("end", lambda row, fmt: fmt(row["end"])),
    ("name", lambda row, fmt: row["name"]),
    ("source", lambda row, fmt: row["source"]),
    ("source_name", lambda row, fmt: row["source_name"]),
    ("type", lambda row, fmt: row["type"]),
    ("category", lambda row, fmt: row["category"]),
    ("criticality", lambda row, fmt: row["criticality"]),
    ("status", lambda row, fmt: row["status"]),
    ("acknowledged_by", lambda row, fmt: (row["acknowledged"] or {}).get("by", "")),
    ("acknowledged_at", lambda row, fmt: fmt((row["acknowledged"] or {}).get("ts"))),
    ("alarm", lambda row, fmt: row["alarm"]),
    ("load", lambda row, fmt: "" if row.get("load") is None else row["load"]),
    ("value", lambda row, fmt: "" if row.get("value") is None else row["value"]),
    ("duration_ms", lambda row, fmt: "" if row.get("duration_ms") is None else row["duration_ms"]),
    ("detail", lambda row, fmt: row["detail"]),
)


class BadQuery(ValueError):
    """A filter the page cannot have sent (the route answers 400 with the message)."""


def parse_query(params):
    """{name: text} of the request's query parameters -> the checked query dict; BadQuery names the bad one."""
    query = {}
    for name in ("from", "to"):
        text = params.get(name, "")
        if text:
            try:
                query[name] = float(text)
            except ValueError:
                raise BadQuery("%s must be a time in seconds since 1970" % name) from None
    for name, allowed in (("type", TYPES), ("status", STATUSES), ("category", CATEGORIES),
                          ("criticality", CRITICALITIES)):
        text = params.get(name, "")
        if text:
            if text not in allowed:
                raise BadQuery("%s must be one of %s" % (name, ", ".join(allowed)))
            query[name] = text
    source = params.get("source", "")
    if len(source) > 64:
        raise BadQuery("source is at most 64 characters")
    if source:
        query["source"] = source
    for name, default, top in (("page", 0, 100000), ("size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        text = params.get(name, "")
        try:
            value = int(text) if text else default
        except ValueError:
            raise BadQuery("%s must be a whole number" % name) from None
        if not (0 <= value <= top) or (name == "size" and value == 0):
            raise BadQuery("%s must be %d..%d" % (name, 1 if name == "size" else 0, top))
        query[name] = value
    return query


def occurrences(records, system_active, device_active, names, now):
    """[row] of every alarm occurrence in ``records`` (oldest first, the event log's order).

    ``system_active``: {(number, source): state} (Alarms.active); ``device_active``: {(netid, number, load):
    alarm} (DeviceAlarms.active); ``names``: {device source "bus:address": display name}."""
    rows, open_system, open_device = [], {}, {}
    for record in records:
        event = record.get("event")
        if record.get("category") == "system" and isinstance(record.get("alarm"), int):
            _system_record(record, event, rows, open_system)
        elif event == "device-alarm" and not record.get("repeat"):
            _device_record(record, rows, open_device)
    for key, row in open_system.items():                 # the live set has the last word
        state = system_active.get(key)
        if state is None:
            row["status"] = "finished"
        elif state.get("acknowledged") and not row["acknowledged"]:
            row["acknowledged"] = dict(state["acknowledged"])
    for key, state in system_active.items():             # active but not in the log (a record still queued)
        if key not in open_system:
            rows.append(_system_row(key[0], key[1], state.get("since", now), state.get("detail", ""),
                                    None, state.get("acknowledged")))
    for key, row in open_device.items():
        if key not in device_active:
            row["status"] = "finished"
    for row in rows:
        row["source_name"] = names.get(_device_key(row["source"]), "")
        row["ackable"] = row["type"] == "system" and row["status"] == "active" and not row["acknowledged"]
    return rows


def _system_row(number, source, start, detail, name=None, acknowledged=None, criticality=None):
    known = SYSTEM_ALARMS.get(number, ("system alarm %d" % number, "information"))
    return {"id": "s:%d:%s:%s" % (number, source, _stamp(start)), "type": "system", "category": "system",
            "alarm": number, "name": name or known[0], "criticality": criticality or known[1], "source": source,
            "start": start, "end": None, "status": "active", "detail": detail or "",
            "acknowledged": dict(acknowledged) if acknowledged else None}


def _system_record(record, event, rows, open_rows):
    key = (record["alarm"], str(record.get("source")))
    row = open_rows.get(key)
    if event in ("raised", "still_active"):
        start = record.get("since", record.get("ts")) if event == "still_active" else record.get("ts")
        if row is not None and row["start"] == start:
            if record.get("acknowledged") and not row["acknowledged"]:
                row["acknowledged"] = dict(record["acknowledged"])
            return
        if row is not None:                              # a new start without a clear: the old one ended unseen
            row["status"] = "finished"
        row = _system_row(key[0], key[1], start, record.get("detail"), record.get("name"),
                          record.get("acknowledged"), record.get("criticality"))
        rows.append(row)
        open_rows[key] = row
    elif event == "acknowledged" and row is not None:
        row["acknowledged"] = {"by": record.get("by"), "ts": record.get("ts")}
    elif event == "cleared" and row is not None:
        row.update(end=record.get("ts"), status="finished")
        del open_rows[key]


def _device_record(record, rows, open_rows):
    key = (record.get("netid"), record.get("alarm"), record.get("load"))
    kind = record.get("kind")
    if record.get("state") == "start":
        row = {"id": "d:%s:%s:%s:%s" % (key[0], key[1], key[2], _stamp(record.get("ts"))),
               "type": "en50160" if kind == "power_quality" else "device", "category": kind or "device",
               "alarm": record.get("alarm"), "name": record.get("name") or "", "criticality": record.get("criticality"),
               "source": str(record.get("source")), "start": record.get("ts"), "end": None, "status": "active",
               "detail": record.get("detail") or "", "acknowledged": None, "load": record.get("load"),
               "value": record.get("value"), "netid": key[0]}
        rows.append(row)
        open_rows[key] = row
        return
    row = open_rows.pop(key, None)
    if row is None:                                      # its start was overwritten, or is in a meter's history
        row = {"id": "d:%s:%s:%s:%s" % (key[0], key[1], key[2], _stamp(record.get("since") or record.get("ts"))),
               "type": "en50160" if kind == "power_quality" else "device", "category": kind or "device",
               "alarm": record.get("alarm"), "name": record.get("name") or "",
               "criticality": record.get("criticality"), "source": str(record.get("source")),
               "start": record.get("since") or record.get("ts"), "detail": record.get("detail") or "",
               "acknowledged": None, "load": record.get("load"), "value": record.get("value"), "netid": key[0]}
        rows.append(row)
    row.update(end=record.get("ts"), status="finished")
    if record.get("duration_ms") is not None:
        row["duration_ms"] = record["duration_ms"]


def _stamp(ts):
    return "%.3f" % ts if isinstance(ts, (int, float)) else "-"


def _device_key(source):
    """"digiware:5:1" -> "digiware:5" (a load's alarms are its device's); other sources unchanged."""
    parts = source.split(":")
    return ":".join(parts[:2]) if len(parts) >= 2 and parts[1].isdigit() else source


def matches(row, query, now):
    """Whether ``row`` passes the query's period (overlap) and filters."""
    end = row["end"] if row["end"] is not None else now
    start = row["start"] if isinstance(row["start"], (int, float)) else end
    if "from" in query and end < query["from"]:
        return False
    if "to" in query and start > query["to"]:
        return False
    for name in ("type", "category", "criticality"):
        if name in query and row[name] != query[name]:
            return False
    status = query.get("status")
    if status in ("active", "finished") and row["status"] != status:
        return False
    if status == "acknowledged" and not row["acknowledged"]:
        return False
    if status == "not_acknowledged" and (row["acknowledged"] or row["type"] != "system"):
        return False
    source = query.get("source")
    return not source or row["source"] == source or row["source"].startswith(source + ":")


def select(rows, query, now):
    """The filtered rows, newest start first."""
    found = [row for row in rows if matches(row, query, now)]
    found.sort(key=lambda row: (row["start"] if isinstance(row["start"], (int, float)) else 0, row["id"]),
               reverse=True)
    return found


def source_options(rows, names):
    """[{source, name}] for the source filter: every device of the topology and every other source in the log."""
    seen = dict((key, name) for key, name in names.items())
    for row in rows:
        key = _device_key(row["source"])
        seen.setdefault(key, "")
    return [{"source": key, "name": seen[key]} for key in sorted(seen)]


def page_of(found, query):
    size, page = query["size"], query["page"]
    return found[page * size:(page + 1) * size]


def export_zip(found, offset_s, gateway_name, now):
    """(file name, bytes): alarms.csv (system and device alarms) and events.csv (EN 50160 events), times in the
    gateway's local time with its offset."""
    zone = datetime.timezone(datetime.timedelta(seconds=offset_s))

    def fmt(ts):
        if not isinstance(ts, (int, float)):
            return ""
        return datetime.datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")

    files = {"alarms.csv": [r for r in found if r["type"] != "en50160"],
             "events.csv": [r for r in found if r["type"] == "en50160"]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in files.items():
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow([header for header, _ in CSV_COLUMNS])
            for row in rows:
                writer.writerow([write(row, fmt) for _, write in CSV_COLUMNS])
            archive.writestr(name, text.getvalue().encode("utf-8"))
    day = datetime.datetime.fromtimestamp(now, zone).strftime("%Y-%m-%d")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", gateway_name or "gateway").strip("_") or "gateway"
    return "%s_alarms_%s.zip" % (safe, day), buffer.getvalue()
