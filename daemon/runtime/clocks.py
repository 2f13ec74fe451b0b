"""The meters' clocks: after an SNTP synchronisation the gateway writes its time to every device that keeps one.

The clock is 6 words at CLOCK_REGISTER (0xE100): day, month, year (4 digits), hour, minute, second, written in
ONE FC16 [OE-A14] [OE-B30] [OE-E34] (../shared/socomec-registers.md §4.3). Which products have it is the
catalogue's ``has_clock``. The writes go through each bus's engine at CURVE priority, below polling and
pass-through like the curve downloads: one device after the other on a bus, the buses side by side. Each device
gets the gateway's time when its own write is queued, rounded to the second, in UTC (docs/architecture.md,
"SNTP and the meters' clocks (issue 16)": why not local time).

Only the door (``daemon/api.py``, ``set_meter_clocks``) calls this module.
"""

import asyncio
import logging
import time

from core import catalogue, modbus_rtu as rtu
from daemon.runtime.bus import CURVE, BusBusy, BusTimeout

log = logging.getLogger("gateway.clocks")

# why a device's clock was not set
NO_ANSWER = "no_answer"          # no valid answer after the bus's retries
REFUSED = "refused"              # a Modbus exception: {exception}
BUSY = "busy"                    # the bus queue of that class was full


def clock_words(unix_time):
    """The 6 words of CLOCK_REGISTER for ``unix_time`` (UTC, to the nearest second)."""
    tm = time.gmtime(int(unix_time + 0.5))
    return [tm.tm_mday, tm.tm_mon, tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec]


def _entry(device):
    return {"bus": device.bus, "address": device.address, "reference": device.reference, "name": device.name,
            "uid": device.uid}


async def _set_bus(engine, devices, clock, outcome):
    for device in devices:
        entry = _entry(device)
        try:
            await engine.write_registers(device.address, catalogue.CLOCK_REGISTER, clock_words(clock.time()),
                                         priority=CURVE)
        except rtu.ModbusException as exc:
            entry.update(reason=REFUSED, exception=exc.code)
            outcome["failed"].append(entry)
        except BusBusy:
            entry.update(reason=BUSY)
            outcome["failed"].append(entry)
        except BusTimeout:
            entry.update(reason=NO_ANSWER)
            outcome["failed"].append(entry)
        else:
            outcome["set"].append(entry)


async def set_meter_clocks(parts):
    """Write the gateway's time to every device of the topology that has a clock, on the buses this gateway
    masters. {"set": [device entry], "failed": [entry + "reason" (+ "exception")], "without_clock": [entry]};
    an entry: bus, address, reference, name, uid."""
    outcome = {"set": [], "failed": [], "without_clock": []}
    by_bus = {}
    for device in parts.topology.devices:
        if device.bus not in parts.engines:
            continue
        if catalogue.has_clock(device.reference):
            by_bus.setdefault(device.bus, []).append(device)
        else:
            outcome["without_clock"].append(_entry(device))
    await asyncio.gather(*(_set_bus(parts.engines[bus], devices, parts.clock, outcome)
                           for bus, devices in sorted(by_bus.items())))
    for entries in outcome.values():
        entries.sort(key=lambda e: (e["bus"], e["address"]))
    log.info("meters' clocks set: %d, not set: %d%s", len(outcome["set"]), len(outcome["failed"]),
             "".join(" %s (%s)" % (e["name"], e["reason"]) for e in outcome["failed"]))
    return outcome
