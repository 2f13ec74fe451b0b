"""The door's shared vocabulary: refusal reasons, ``Refused``, and the runtime's errors as refusals.

daemon/api.py re-exports every name here: front ends keep reading ``api.Refused``, ``api.BAD_VALUE``."""

import contextlib
import logging

from daemon.blocking import BlockingQueueFull
from daemon.runtime import control
from daemon.runtime.bus import BusBusy, BusTimeout
from daemon.security import accounts

log = logging.getLogger("gateway.api")

# refusal reasons (the write reasons are control's, so a protocol maps one set)
RIGHTS = "rights"                    # the caller's profile or protocol may not do this
POLICY = control.POLICY              # the security policy forbids it now
NO_DEVICE = control.NO_DEVICE
NOT_WRITABLE = control.NOT_WRITABLE
BAD_VALUE = control.BAD_VALUE
NO_ANSWER = control.NO_ANSWER
DEVICE_REFUSED = control.DEVICE_REFUSED
BUSY = "busy"                        # already running (a detection)
NOT_FOUND = "not_found"              # no such alarm, document...
UNSUPPORTED = "unsupported"          # the board cannot (set its clock, open a port)
AUTH = accounts.AUTH                 # wrong password or passphrase, no (or an ended) session
LOCKED = accounts.LOCKED             # a profile locked after failed logins, Totem not unlocked
MUST_CHANGE = "must_change"          # the session's password must be changed before anything else
STORAGE = accounts.STORAGE           # a state file could not be written: nothing changed
SYSTEM = "system"                    # a backup, restore or upgrade refused: ``Refused.why`` says why (issue 15)
OFF = "off"                          # the outbound client asked for (exports, e-mail, SNTP) is switched off

ALARM_CONFLICT = 4                   # system alarm numbers the summary reads (SPEC §6)
REBOOT_EXIT = 75                     # the daemon's exit code after a reboot asked for: systemd starts it again
REBOOT_DELAY_S = 1.0                 # the answer to the reboot request leaves before the daemon stops


class Refused(Exception):
    """A command the door refuses: ``reason`` (one of the constants above), a message for people and,
    for a form, ``details``: one message per problem (what a new password misses; for settings, one dict
    per refused field: field, catalogue key and parameters, English message — SettingError.details)."""

    def __init__(self, reason, message, details=None):
        Exception.__init__(self, message)
        self.reason = reason
        self.details = list(details or ())


@contextlib.contextmanager
def _bus_refusals():
    """The runtime's errors as the door's refusals, so front ends import nothing of the runtime."""
    try:
        yield
    except control.WriteRefused as exc:
        raise Refused(exc.reason, str(exc)) from None
    except BusBusy:
        raise Refused(BUSY, "the bus queue is full, try again") from None
    except BusTimeout:
        raise Refused(NO_ANSWER, "the device did not answer") from None


@contextlib.contextmanager
def _account_refusals():
    """The accounts' refusals (and a full executor) as the door's."""
    try:
        yield
    except accounts.AccountRefused as exc:
        raise Refused(exc.reason, str(exc), exc.details) from None
    except BlockingQueueFull:
        raise Refused(BUSY, "the gateway is busy, try again") from None
