"""Two software slots, A and B, and the rule that moves between them (issue 15: install, switch, roll back).

Under the installation root (``/opt/open-m70`` on the Pi)::

    slots/A/  slots/B/      a complete software tree each, with slot.json (version, when installed)
    slots/slots.json        {"active": "A", "trial": null, "trial_boots": 0, "previous": null}

``slots/`` is the only part of the installation the daemon's user may write (the launcher and the Python
environment beside it are root's: deploy/open-m70.service.in).

An upgrade is written into the slot that is not active (``install``) and named
the *trial*. At the next start the launcher (``boot``, run by systemd before
the daemon) starts the trial once; the daemon running from it reports itself
healthy (``healthy``) when it has served for a while, and only then does the
trial become the active slot. If the trial slot starts a second time without
having reported healthy (it crashed, hung and was killed by the watchdog, or
gave up waiting for health and exited), the launcher rolls back: the trial is
forgotten and the active slot, untouched since, is started. Every decision is
one atomic write of slots.json, so a power cut at any moment leaves either the
old or the new decision, and the active slot is never written to.
"""

import os
import shutil
import time

from daemon.atomicfile import fsync_directory, read_json, read_json_recovering, write_json

SLOTS = ("A", "B")
STATE_FILE = "slots.json"
SLOT_FILE = "slot.json"


def _check_state(doc):
    if doc.get("active") not in SLOTS or doc.get("trial") not in SLOTS + (None,):
        raise ValueError("not a slots document")


def _other(slot):
    return SLOTS[1 - SLOTS.index(slot)]


class Slots:
    def __init__(self, root):
        self.root = root
        self.folder = os.path.join(root, "slots")

    def path(self, slot):
        return os.path.join(self.folder, slot)

    def state(self):
        """The decisions so far; a damaged file gives way to its good copy (written with each decision), and
        with neither, slot A, the one the installation writes."""
        state, _problem = read_json_recovering(os.path.join(self.folder, STATE_FILE), _check_state)
        return state or {"active": "A", "trial": None, "trial_boots": 0, "previous": None}

    def _save(self, state):
        os.makedirs(self.folder, exist_ok=True)
        write_json(os.path.join(self.folder, STATE_FILE), state, backup=True)

    def version(self, slot):
        """The version installed in ``slot`` (None when the slot is empty)."""
        try:
            info = read_json(os.path.join(self.path(slot), SLOT_FILE), None)
        except ValueError:
            return None
        return info.get("version") if isinstance(info, dict) else None

    def describe(self):
        """What the system page shows: each slot's version, which is active, which is on trial."""
        state = self.state()
        return {"active": state["active"], "trial": state["trial"],
                "slots": dict((slot, self.version(slot)) for slot in SLOTS)}

    def install(self, staging, manifest):
        """Move the verified ``staging`` folder into the inactive slot and make it the trial; the slot's name.

        The active slot is not touched; an earlier trial that never started is replaced."""
        state = self.state()
        target = _other(state["active"])
        os.makedirs(self.folder, exist_ok=True)
        write_json(os.path.join(staging, SLOT_FILE), {"version": manifest["version"], "installed": int(time.time())})
        old = os.path.join(self.folder, ".old-" + target)
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self.path(target)):
            os.rename(self.path(target), old)
        os.rename(staging, self.path(target))
        fsync_directory(self.folder)
        state.update(trial=target, trial_boots=0)
        self._save(state)
        shutil.rmtree(old, ignore_errors=True)
        return target

    def boot(self):
        """Which slot to start now: (slot, "trial" | "rolled back" | "active"). Run once per start."""
        state = self.state()
        trial = state.get("trial")
        if trial in SLOTS and os.path.isdir(self.path(trial)):
            if not state.get("trial_boots"):
                state["trial_boots"] = 1
                self._save(state)
                return trial, "trial"
            state.update(trial=None, trial_boots=0)
            self._save(state)
            return state["active"], "rolled back"
        if trial is not None:                    # a trial whose folder is gone: forget it
            state.update(trial=None, trial_boots=0)
            self._save(state)
        return state["active"], "active"

    def healthy(self, slot):
        """The daemon running from ``slot`` has served well: a trial slot becomes the active one. True if it did."""
        state = self.state()
        if state.get("trial") != slot:
            return False
        state.update(previous=state["active"], active=slot, trial=None, trial_boots=0)
        self._save(state)
        return True
