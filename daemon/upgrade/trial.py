"""A new software version on trial: kept when it has served well, stopped (and so rolled back) when it has not.

The launcher (daemon/upgrade/launch.py) starts a freshly installed slot once, with TRIAL_ENV set. Here the
daemon of that slot watches itself: once it has run ``upgrade.healthy_after_s`` with every service that should
run running and every bus having completed a poll cycle, it tells the slots (``Slots.healthy``): the slot
becomes the active one, an event says so. If ``upgrade.trial_timeout_s`` passes first, it says why in the event
log and stops the daemon with TRIAL_FAILED_EXIT; systemd starts the launcher again, which rolls back to the slot
that was active. A crash or a watchdog kill before health ends the same way (the trial is started only once).
"""

import asyncio
import logging
import os
import time

from daemon.blocking import run_blocking
from daemon.upgrade.launch import ROOT_ENV, SLOT_ENV, TRIAL_ENV
from daemon.upgrade.slots import Slots

log = logging.getLogger("gateway.upgrade")

TRIAL_FAILED_EXIT = 76          # EX_PROTOCOL: the unit restarts (Restart=always) and the launcher rolls back
CHECK_S = 1.0


def trial_of(environ=os.environ):
    """(root, slot) when this daemon runs a slot on trial, else None."""
    if environ.get(TRIAL_ENV) == "1" and environ.get(ROOT_ENV) and environ.get(SLOT_ENV):
        return environ[ROOT_ENV], environ[SLOT_ENV]
    return None


def unhealthy(gateway):
    """What keeps the gateway from being healthy now (a list of reasons; empty when healthy)."""
    reasons = []
    for bus, poller in gateway.pollers.items():
        if poller.cycles < 1 and gateway.topology.on_bus(bus):
            reasons.append("the %s bus has not completed a poll cycle" % bus)
    for service in gateway.services:
        if not hasattr(service, "status"):           # the web server
            if not service.listening:
                reasons.append("the web server is not listening")
            continue
        state = service.status()
        if state.get("enabled", True) and not state.get("running", True):
            reasons.append("%s is not running" % service.name)
    return reasons


async def watch(gateway, root, slot, stop, monotonic=time.monotonic):
    """Report health or give up; returns "healthy" or "failed" (then ``stop`` is set)."""
    started = monotonic()
    healthy_after = gateway.settings.get("upgrade.healthy_after_s")
    timeout = gateway.settings.get("upgrade.trial_timeout_s")
    log.warning("software slot %s on trial: kept if healthy for %d s within %d s", slot, healthy_after, timeout)
    while True:
        elapsed = monotonic() - started
        try:
            reasons = unhealthy(gateway)
        except Exception as exc:         # a check that fails is a reason, never the end of the watch
            log.exception("upgrade trial: health check failed")
            reasons = ["the health check failed (%s)" % exc]
        if not reasons and elapsed >= healthy_after:
            if await run_blocking(Slots(root).healthy, slot):
                gateway.alarms.record_event({"event": "upgrade-kept", "category": "system", "slot": slot,
                                             "detail": "the new software in slot %s is healthy: kept" % slot})
                log.warning("software slot %s kept (healthy after %.0f s)", slot, elapsed)
            return "healthy"
        if elapsed >= timeout:
            why = "; ".join(reasons) if reasons else "not healthy long enough"
            gateway.alarms.record_event({"event": "upgrade-rolled-back", "category": "system", "slot": slot,
                                         "detail": "the new software in slot %s was not healthy within %d s (%s): "
                                                   "the previous version starts again" % (slot, timeout, why)})
            log.error("software slot %s not healthy within %d s (%s): stopping for the roll-back", slot, timeout,
                      why)
            stop.set()
            return "failed"
        await asyncio.sleep(CHECK_S)
