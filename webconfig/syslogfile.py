"""The event log as a syslog file (RFC 5424): the Diagnosis page's export.

One line per event, oldest first::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG

PRI is facility local0 (16) × 8 + the syslog severity of the event's
criticality (critical → 2 crit, non-critical → 4 warning, information → 6
info, none → 5 notice); TIMESTAMP the event's time in UTC with milliseconds;
HOSTNAME the gateway's name in printable ASCII (other characters as "_");
APP-NAME ``openm70``; PROCID "-" (events outlive the process that logged
them); MSGID the event's kind (``raised``, ``cleared``, ``reboot``...); no
structured data; MSG the record's other fields as one JSON object in ASCII,
so every line is one line and a reader gets each field back exactly.
"""

import json
import re
import time

FACILITY = 16                    # local0
SEVERITIES = {"critical": 2, "non-critical": 4, "information": 6}
DEFAULT_SEVERITY = 5             # notice: an event that names no criticality (a clock set, a state file)
APP_NAME = "openm70"
NIL = "-"
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")
_LEFT_OUT = ("ts", "seq", "pending")       # ts is the TIMESTAMP; seq and pending are the ring's bookkeeping


def _token(text, limit):
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters, NIL when empty."""
    token = _NOT_PRINTABLE.sub("_", str(text or ""))[:limit]
    return token or NIL


def timestamp(ts):
    """RFC 5424 TIMESTAMP of a Unix time (UTC, milliseconds), NIL when there is none or it has no 4-digit year."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return NIL
    try:
        whole = time.gmtime(ts)
    except (OverflowError, OSError, ValueError):
        return NIL
    if not 1 <= whole.tm_year <= 9999:
        return NIL
    millis = min(999, int(round((ts - int(ts)) * 1000))) if ts >= 0 else 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", whole) + ".%03dZ" % millis


def severity(record):
    return SEVERITIES.get(record.get("criticality"), DEFAULT_SEVERITY)


def line(record, hostname):
    pri = FACILITY * 8 + severity(record)
    message = dict((k, v) for k, v in record.items() if k not in _LEFT_OUT)
    msg = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "<%d>1 %s %s %s %s %s %s %s" % (pri, timestamp(record.get("ts")), _token(hostname, 255), APP_NAME, NIL,
                                          _token(record.get("event"), 32), NIL, msg)


def render(records, hostname):
    """The file's bytes: one line per record, each ended by a line feed."""
    return "".join(line(record, hostname) + "\n" for record in records).encode("ascii")


def file_name(ts):
    """m70-events-<YYYY-MM-DD>.log on the gateway's date (UTC)."""
    stamp = timestamp(ts)
    return "m70-events-%s.log" % (stamp[:10] if stamp != NIL else "undated")
