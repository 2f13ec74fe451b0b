"""BACnet/IP benchmark: RP/RPM latency and throughput, and the poll-cycle cost of serving them.

    .venv/bin/python bench/bacnet.py [--cycles 8] [--rp 2000]

Reference site (board/topologies/reference32.json, 32 meters) polling on
both buses, BACnet/IP on a loopback port. The client is @bacnet-js/client
under Node.js in its own process (tests/bacnet/client.mjs), one request at a
time, back to back: every ReadPropertyMultiple asks for the Present_Value of
20 Analog Inputs of one meter (routed through the gateway to the virtual
network), cycling over the 32 meters.

Printed, all measured in the same run:
* poll cycle per bus with no BACnet traffic (reference), under a client
  paced at --rate RPM/s, and under a client reading back to back (which the
  server paces to REQUEST_RATE); the ratio to the reference (target: slowed
  <= 5 %, ratio <= 1.05);
* RPM and RP latency p50 / p99 / max (target p99 <= 10 ms) and throughput;
* the event-loop lag under load.
"""

import argparse
import asyncio
import os
import socket
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "bacnet"))

import statistics  # noqa: E402

from bacnet_peer import ANALOG_INPUT, PROP, NodeBacnet  # noqa: E402

from bench.common import free_port, percentile, reference_gateway  # noqa: E402
from protocols.bacnet import BacnetService, points  # noqa: E402
from protocols.bacnet.transport import REQUEST_RATE  # noqa: E402

NET = 1000
AIS_PER_RPM = 20
WARM_CYCLES = 6


def settled(times):
    """The last three cycles within 5 % of each other."""
    last = list(times)[-3:]
    return len(last) == 3 and max(last) <= 1.05 * min(last)


def rpm_jobs(devices, port):
    jobs = []
    for device in devices:
        ais = [p for p in points.device_points(device) if p.kind == points.ANALOG_INPUT][:AIS_PER_RPM]
        if not ais:
            continue
        target = {"address": "127.0.0.1:%d" % port, "net": NET, "adr": [device.address]}
        jobs.append({"target": target, "specs": [
            {"type": ANALOG_INPUT, "instance": p.instance, "properties": [PROP["present_value"]]} for p in ais]})
    return jobs


def rp_jobs(devices, port):
    jobs = []
    for device in devices:
        ais = [p for p in points.device_points(device) if p.kind == points.ANALOG_INPUT]
        if ais:
            jobs.append({"target": {"address": "127.0.0.1:%d" % port, "net": NET, "adr": [device.address]},
                         "type": ANALOG_INPUT, "instance": ais[0].instance, "property": PROP["present_value"]})
    return jobs


async def cycles_during(gateway, cycles, work):
    """Run ``work()`` repeatedly until every bus has completed ``cycles`` whole cycles; their times."""
    pollers = gateway.pollers
    start = dict((b, p.cycles) for b, p in pollers.items())
    # the first cycle of the window started before it: skip it
    while min(p.cycles - start[b] for b, p in pollers.items()) < cycles + 1:
        await work()
    return dict((b, list(p.cycle_times)[-(p.cycles - start[b] - 1):]) for b, p in pollers.items())


async def measure(cycles, rp_count, rate):
    port = free_port(socket.SOCK_DGRAM)
    settings = {"bacnet.enabled": True, "bacnet.port": port, "bacnet.bind": "127.0.0.1"}
    phases = {}
    async with reference_gateway(settings, [BacnetService]) as gateway, \
            NodeBacnet(free_port(socket.SOCK_DGRAM)) as node:
        service, devices = gateway.services[0], gateway.topology.devices
        await node.call("loop", jobs=rpm_jobs(devices, port), count=200)        # warm-up
        # the first digiware cycles after start are slower (measured up to 2x): wait until they settle
        digiware = gateway.pollers["digiware"]
        while not service.stack.settled() or digiware.cycles < WARM_CYCLES or not settled(digiware.cycle_times):
            await asyncio.sleep(0.2)

        async def idle():
            await asyncio.sleep(0.2)
        phases["reference"] = {"cycles": await cycles_during(gateway, cycles, idle)}
        for name, paced in (("paced", rate), ("back to back", 0)):
            run = {"latencies": [], "errors": 0, "elapsed": 0.0}

            async def rpm_load(run=run, paced=paced):
                out = await node.call("loop", jobs=rpm_jobs(devices, port), count=int(paced * 2) if paced else 300,
                                      rate=paced)
                run["latencies"] += out["latencies"]
                run["errors"] += out["errors"]
                run["elapsed"] += out["elapsed"]
            gateway.looplag.reset()
            run["cycles"] = await cycles_during(gateway, cycles, rpm_load)
            run["lag"] = gateway.looplag.summary()
            phases[name] = run
        phases["reference after"] = {"cycles": await cycles_during(gateway, cycles, idle)}
        rp = {"paced": await node.call("loop", jobs=rp_jobs(devices, port), count=rp_count, rate=rate),
              "back to back": await node.call("loop", jobs=rp_jobs(devices, port), count=rp_count)}
        counters = dict(service.site.counters)
    return phases, rp, counters


def median(values):
    """Cycle times of a phase: the median, so a cycle disturbed by something else on the machine
    (seen: a few 2x cycles, with or without BACnet) does not decide the ratio."""
    return statistics.median(values)


def stats(latencies):
    return percentile(latencies, 0.50), percentile(latencies, 0.99), max(latencies)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=8, help="poll cycles per bus in each phase")
    parser.add_argument("--rp", type=int, default=2000, help="ReadProperty requests in the RP phase")
    parser.add_argument("--rate", type=float, default=100.0, help="RPM per second of the paced client")
    args = parser.parse_args()
    phases, rp, counters = asyncio.run(measure(args.cycles, args.rp, args.rate))
    # the reference is measured before and after the loads: the ratio is against both together
    reference = dict((b, phases["reference"]["cycles"][b] + phases["reference after"]["cycles"][b])
                     for b in phases["reference"]["cycles"])
    print("BACnet/IP on the reference site (32 meters polling on both buses); client @bacnet-js/client in its own "
          "process, one request at a time;\nRPM = Present_Value of %d AIs of one meter, cycling over the 32"
          % AIS_PER_RPM)
    print("server pacing of confirmed requests: %.0f/s (protocols/bacnet/transport.py REQUEST_RATE)" % REQUEST_RATE)
    print("poll cycle (median), %d cycles per bus per phase:" % args.cycles)
    print("%-28s %12s %12s %8s %8s %12s %10s %10s" % ("RPM load", "digiware ms", "rs485 ms", "ratio", "req/s",
                                                      "p50/p99 ms", "max ms", "lag p99"))
    for name in ("reference", "reference after"):
        cycles = phases[name]["cycles"]
        print("%-28s %12.1f %12.1f %8.3f" % ("none (%s)" % name, 1000 * median(cycles["digiware"]),
                                             1000 * median(cycles["rs485"]),
                                             max(median(cycles[b]) / median(reference[b]) for b in reference)))
    for name in ("paced", "back to back"):
        run = phases[name]
        ratio = max(median(run["cycles"][b]) / median(reference[b]) for b in reference)
        p50, p99, top = stats(run["latencies"])
        label = "client at %.0f/s" % args.rate if name == "paced" else "client back to back"
        print("%-28s %12.1f %12.1f %8.3f %8.0f %12s %10.2f %10.2f" % (
            label, 1000 * median(run["cycles"]["digiware"]), 1000 * median(run["cycles"]["rs485"]), ratio,
            len(run["latencies"]) / run["elapsed"], "%.2f/%.2f" % (p50, p99), top, run["lag"]["p99_ms"]))
        if run["errors"]:
            print("  errors: %d" % run["errors"])
    for name, run in rp.items():
        p50, p99, top = stats(run["latencies"])
        label = "at %.0f/s" % args.rate if name == "paced" else name
        print("RP (Present_Value), %s: %d requests, %.0f req/s, %d errors; latency p50 %.2f ms, p99 %.2f ms, "
              "max %.2f ms" % (label, len(run["latencies"]), len(run["latencies"]) / run["elapsed"], run["errors"],
                               p50, p99, top))
    print("targets: RP/RPM p99 <= 10 ms; poll cycle slowed <= 5 % (ratio <= 1.05)")
    print("server counters: %s" % ", ".join("%s=%d" % kv for kv in sorted(counters.items())))


if __name__ == "__main__":
    main()
