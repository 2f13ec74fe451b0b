"""The SNTP service: the gateway's clock from an SNTP server every ``sntp.period_s``, then the meters' clocks.

A success sets the clock through the door (``sync_clock``: the board's clock, an offset on the simulated board),
clears system alarm 2, records an event when the clock moved by more than a second, then has the gateway write
its time to every meter that keeps one (``set_meter_clocks``, a low-priority bus job). A failure raises alarm 2
with the reason (English detail, catalogue text "sntp.error.<code>") and retries sooner, 30 s after the first
failure and doubling, never later than the period nor than RETRY_MAX_S. Switched off, the alarm is cleared.

The clock is UTC and so is what the meters get (docs/architecture.md, "SNTP and the meters' clocks (issue 16)");
``time.utc_offset_min`` and ``time.dst`` only say how local time is shown (``status()["local_offset_s"]``).
Scheduling runs on the event loop's monotonic time, never on the clock this service steps.
"""

import asyncio
import logging

from daemon.api import Refused
from daemon.service import SwitchedService
from daemon.supervise import Supervised, cancel_and_wait
from outbound.sntp import client

log = logging.getLogger("gateway.sntp")

RETRY_FIRST_S = 30.0
RETRY_MAX_S = 900.0
MOVED_S = 1.0                 # a step beyond this is an event in the log
CLOCK_REFUSED = "clock_refused"     # the gateway's clock could not be set (the door refused): {reason}


def retry_delay(failures, period):
    """Seconds until the next attempt after ``failures`` failures in a row (0: the period)."""
    if failures <= 0:
        return float(period)
    return min(float(period), RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))


class SntpService(SwitchedService):
    """Runs while ``sntp.enabled`` (daemon/service.py: switched on and off with its setting); a new server, port
    or period restarts it, and it asks at once."""
    name = "sntp"
    reopen_keys = ("sntp.server", "sntp.port", "sntp.period_s")

    def __init__(self, door, timeout=client.TIMEOUT_S, tries=client.TRIES):
        SwitchedService.__init__(self, door)
        self.timeout = timeout
        self.tries = tries
        self.failures = 0
        self.attempts = 0
        self.last_sync = None        # gateway time of the last success
        self.last_answer = None      # SntpAnswer.as_dict() of the last success
        self.last_step = None        # s the clock moved at the last success
        self.error = None            # {"code", "message", "params"} of the last failure, None after a success
        self.meters = None           # the last set_meter_clocks() result
        self._next_due = 0.0         # loop time of the next attempt
        self._sync_lock = asyncio.Lock()
        self._task = Supervised("sntp", self._run)
        self._meter_task = None

    async def _open(self):
        self.failures = 0
        self._next_due = 0.0
        self._task.start()

    async def _close(self):
        await self._task.stop()
        if not self.enabled():              # switched off: nothing is wrong any more (a new server: the next try says)
            self.door.report_alarm(False)
            self.error = None

    async def stop(self):
        await SwitchedService.stop(self)
        await cancel_and_wait(self._meter_task)

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= self._next_due:
                await self.cycle()
            await asyncio.sleep(max(0.0, self._next_due - loop.time()))

    # ------------------------------------------------------------ one synchronisation

    async def cycle(self):
        """One attempt now (the background task's, or a test's): the clock, then the meters' clocks.
        Returns what ``sync_now`` returns."""
        result = await self._synchronise()
        if result.get("ok") and self._meter_task is not None:
            await asyncio.shield(self._meter_task)
        return result

    async def sync_now(self):
        """The page's *Synchronise now* button: the clock at once (the meters follow in the background).
        {"ok": True, "offset", "delay", "server", "stratum"} or {"ok": False, "code", "message"}."""
        return await self._synchronise()

    async def _synchronise(self):
        async with self._sync_lock:
            server, port = self.settings.get("sntp.server"), self.settings.get("sntp.port")
            period = self.settings.get("sntp.period_s")
            self.attempts += 1
            try:
                answer = await client.query(server, port, self.door.time, self.timeout, self.tries)
                step = self.door.sync_clock(self.door.time() + answer.offset)
            except client.SntpError as error:
                return self._failed(server, port, period, error.code, str(error), error.params)
            except Refused as refused:
                return self._failed(server, port, period, CLOCK_REFUSED, str(refused), {"reason": str(refused)})
            self.failures = 0
            self._next_due = asyncio.get_running_loop().time() + retry_delay(0, period)
            self.last_sync, self.last_step, self.error = self.door.time(), step, None
            self.last_answer = answer.as_dict()
            self.door.report_alarm(False)
            if abs(step) > MOVED_S:
                self.door.record_event("clock-synchronised", "the clock moved by %+.3f s (SNTP server %s:%d)"
                                       % (step, server, port), server="%s:%d" % (server, port),
                                       step=round(step, 3), stratum=answer.stratum)
            log.info("clock synchronised with %s:%d: step %+.3f s, delay %.3f s, stratum %d",
                     server, port, step, answer.delay, answer.stratum)
            if self._meter_task is None or self._meter_task.done():
                self._meter_task = asyncio.get_running_loop().create_task(self._set_meters(), name="sntp-meters")
            return {"ok": True, "offset": answer.offset, "delay": answer.delay, "server": "%s:%d" % (server, port),
                    "address": answer.server, "stratum": answer.stratum, "step": step}

    def _failed(self, server, port, period, code, message, params):
        self.failures += 1
        delay = retry_delay(self.failures, period)
        self._next_due = asyncio.get_running_loop().time() + delay
        where = "%s:%d" % (server, port)
        params = dict(params, server=where)
        self.error = {"code": code, "message": message, "params": params}
        self.door.report_alarm(True, "%s: %s" % (where, message), {"key": "sntp.error." + code, "params": params})
        log.warning("SNTP synchronisation with %s failed (%d in a row, next try in %.0f s): %s",
                    where, self.failures, delay, message)
        return {"ok": False, "code": code, "message": message, "server": where, "retry_in_s": delay}

    async def _set_meters(self):
        try:
            self.meters = await self.door.set_meter_clocks()
        except Refused as refused:
            log.warning("the meters' clocks were not set: %s", refused)
            self.meters = {"error": str(refused)}

    # ------------------------------------------------------------ the page

    def status(self):
        next_attempt = None
        if self.running:
            next_attempt = self.door.time() + max(0.0, self._next_due - asyncio.get_running_loop().time())
        return {"enabled": self.enabled(), "running": self.running, "server": self.settings.get("sntp.server"),
                "port": self.settings.get("sntp.port"), "period_s": self.settings.get("sntp.period_s"),
                "last_sync": self.last_sync, "offset_s": (self.last_answer or {}).get("offset"),
                "delay_s": (self.last_answer or {}).get("delay"), "stratum": (self.last_answer or {}).get("stratum"),
                "step_s": self.last_step, "next_attempt": next_attempt, "failures": self.failures,
                "attempts": self.attempts, "error": self.error, "meters": self.meters,
                "local_offset_s": self.door.local_offset_s()}
