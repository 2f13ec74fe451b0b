"""The audit trail (IEC 62443-4-2 CR 2.8): security events with the same fields, in the fixed-size event log.

Every auditable event is one record of the event log (``Alarms.record_event``, and so the exported syslog
file): ``event``, ``category`` "audit", ``ts`` (added by the log), ``profile`` (the web profile, or the
protocol for a field protocol), ``protocol``, ``client`` (the peer's address, "" for the daemon itself),
``outcome`` (success, failure, refused, lockout) and the event's own fields. ``audit`` is what the door and
the gateway call. The accounts module writes its records itself ("login", "login-failed", ...) with
``by`` = repr(Caller); ``AuditedLog`` stands between it and the event log and completes those records to
the same fields, so a reader (or a SIEM) finds one shape. A secret never enters a record: setting changes
give a secret's name with "(secret)" for its values (``setting_change``).
"""

import logging
import re

log = logging.getLogger("gateway.audit")

# accounts.py's events: the outcome each states (its records carry no outcome field of their own)
ACCOUNT_OUTCOMES = {"login": "success", "login-failed": "failure", "profile-locked": "lockout",
                    "password-changed": "success", "password-change-failed": "failure",
                    "password-recovered": "success", "recovery-failed": "failure",
                    "totem-locked": "success", "totem-unlocked": "success", "passphrase-generated": "success"}
_CALLER = re.compile(r"(?P<protocol>[a-z_]+)(/(?P<profile>[a-z]+))?( from (?P<client>\S+))?\Z")
SECRET_SHOWN = "(secret)"


def fields_of(caller):
    """profile, protocol and client of a ``Caller`` as the audit records them."""
    return {"profile": caller.profile or caller.protocol, "protocol": caller.protocol,
            "client": str(caller.peer) if caller.peer else ""}


def record(event, caller, outcome, **fields):
    """The event-log record of one audited event."""
    out = {"event": event, "category": "audit", "outcome": outcome}
    out.update(fields_of(caller))
    out.update(fields)
    return out


def audit(sink, event, caller, outcome, **fields):
    """Record ``event`` by ``caller`` with ``outcome`` in the event log ``sink`` (``record_event``) and the log."""
    entry = record(event, caller, outcome, **fields)
    log.info("audit %s", " ".join("%s=%s" % item for item in sorted(entry.items())))
    sink.record_event(entry)
    return entry


def setting_change(name, old, new, secret):
    """The fields of one setting's change: name, old → new; a secret's values are never written."""
    if secret:
        return {"setting": name, "old": SECRET_SHOWN, "new": SECRET_SHOWN}
    return {"setting": name, "old": old, "new": new}


def complete(entry):
    """An accounts record completed to the audit's fields (profile, protocol, client, outcome)."""
    entry = dict(entry)
    outcome = ACCOUNT_OUTCOMES.get(entry.get("event"))
    if outcome is None:
        return entry
    entry.setdefault("outcome", outcome)
    entry["category"] = "audit"
    match = _CALLER.match(str(entry.get("by", "")))
    if match:
        entry.setdefault("protocol", match.group("protocol"))
        entry.setdefault("client", match.group("client") or "")
        entry.setdefault("profile", match.group("profile") or match.group("protocol"))
    else:
        entry.setdefault("protocol", "")
        entry.setdefault("client", "")
    return entry


class AuditedLog:
    """The event log as the accounts see it: their records completed to the audit's shape, the rest as is."""

    def __init__(self, alarms):
        self._alarms = alarms

    def record_event(self, entry):
        self._alarms.record_event(complete(entry))

    def __getattr__(self, name):            # set(), active... the alarms' own
        return getattr(self._alarms, name)
