"""BACnet/IP benchmark: RP/RPM latency and throughput, and the poll-cycle cost of serving them.

    .venv/bin/python bench/bacnet.py [--cycles 8] [--rp 2000] [--clients 3] [--bacserv PATH]

Reference site (board/topologies/reference32.json, 32 meters) polling on
both buses, BACnet/IP on a loopback port. The client is @bacnet-js/client
under Node.js in its own process (tests/bacnet/client.mjs), one request at a
time, back to back: every ReadPropertyMultiple asks for the Present_Value of
20 Analog Inputs of one meter (routed through the gateway to the virtual
network), cycling over the 32 meters.

Printed, all measured in the same run:
* poll cycle per bus with no BACnet traffic (reference), under a client
  paced at --rate RPM/s, under a client reading RPMs back to back, under one
  reading RPs back to back (lock-step, as a BMS polls) and under --clients
  such clients on other loopback addresses (127.0.0.2...: other hosts to the
  gateway) at once; the ratio to the reference (target: slowed <= 5 %,
  ratio <= 1.05). Each client has its budget of loop time
  (daemon/loopshare.py): no global pacing;
* RPM and RP latency p50 / p99 / max (targets: RPM p99 <= 5 ms) and throughput;
  the several clients' rates and their spread (max / min: fair is ~1);
* the reference: bacnet-stack's ``bacserv`` (C; --bacserv, or ``bacserv`` on
  the PATH; build it from its public source: ``make BACNET_PORT=linux server``,
  then bin/bacserv) read lock-step by the same client in the same run, RP of
  its Analog Input 1 Present_Value; our lock-step RP rate against its (target >= 0.2);
* the event-loop lag under load.
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "bacnet"))

import statistics  # noqa: E402

from bacnet_peer import ANALOG_INPUT, PROP, NodeBacnet  # noqa: E402

from bench.common import free_port, percentile, reference_gateway  # noqa: E402
from protocols.bacnet import BacnetService, points  # noqa: E402
from daemon.loopshare import CLIENT_SHARE, LOOP_SHARE  # noqa: E402

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


async def measure(cycles, rp_count, rate, clients, firewall):
    port = free_port(socket.SOCK_DGRAM)
    settings = {"bacnet.enabled": True, "bacnet.port": port, "bacnet.bind": "127.0.0.1", "firewall.enabled": firewall}
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
            print("phase:", name, file=sys.stderr, flush=True)
            run["cycles"] = await cycles_during(gateway, cycles, rpm_load)
            run["lag"] = gateway.looplag.summary()
            phases[name] = run
        rp = {"paced": await node.call("loop", jobs=rp_jobs(devices, port), count=rp_count, rate=rate)}
        run = {"latencies": [], "errors": 0, "elapsed": 0.0}

        async def rp_load(run=run):
            out = await node.call("loop", jobs=rp_jobs(devices, port), count=rp_count)
            run["latencies"] += out["latencies"]
            run["errors"] += out["errors"]
            run["elapsed"] += out["elapsed"]
        gateway.looplag.reset()
        run["cycles"] = await cycles_during(gateway, cycles, rp_load)
        run["lag"] = gateway.looplag.summary()
        rp["back to back"] = phases["RP back to back"] = run
        phases["clients"] = await several(gateway, cycles, clients, devices, port, rp_count)
        phases["reference after"] = {"cycles": await cycles_during(gateway, cycles, idle)}
        counters = dict(service.site.counters)
        share = service.stack.server.share.status()
    return phases, rp, counters, share


async def several(gateway, cycles, count, devices, port, rp_count):
    """``count`` lock-step RP clients on 127.0.0.2... (other hosts) at once, for ``cycles`` poll cycles."""
    runs = [{"latencies": [], "errors": 0, "elapsed": 0.0} for _ in range(count)]
    nodes = [NodeBacnet(free_port(socket.SOCK_DGRAM), "127.0.0.%d" % (2 + n)) for n in range(count)]
    for node in nodes:
        await node.start()
    try:
        async def load():
            outs = await asyncio.gather(*[node.call("loop", jobs=rp_jobs(devices, port), count=rp_count // 2)
                                          for node in nodes])
            for run, out in zip(runs, outs, strict=True):
                run["latencies"] += out["latencies"]
                run["errors"] += out["errors"]
                run["elapsed"] += out["elapsed"]
        gateway.looplag.reset()
        result = {"cycles": await cycles_during(gateway, cycles, load), "runs": runs}
        result["lag"] = gateway.looplag.summary()
        return result
    finally:
        for node in nodes:
            await node.close()


async def bacserv_reference(path, rp_count, repeat=3):
    """bacnet-stack's server read lock-step by the same client: the best of ``repeat`` runs of ``rp_count``."""
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen([path, "4194"], env=dict(os.environ, BACNET_IP_PORT=str(port), BACNET_IFACE="lo"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.0)
        async with NodeBacnet(free_port(socket.SOCK_DGRAM)) as node:
            job = {"target": {"address": "127.0.0.1:%d" % port}, "type": ANALOG_INPUT, "instance": 1,
                   "property": PROP["present_value"]}
            runs = [await node.call("loop", jobs=[job], count=rp_count) for _ in range(repeat)]
    finally:
        proc.terminate()
        proc.wait()
    return runs


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
    parser.add_argument("--firewall", action="store_true", help="keep the firewall on (its default 2,000 requests/s "
                        "per client bans a lock-step reader faster than that for 30 s)")
    parser.add_argument("--clients", type=int, default=3, help="lock-step RP clients at once (other hosts)")
    parser.add_argument("--bacserv", default=shutil.which("bacserv"), help="bacnet-stack's bacserv (reference)")
    args = parser.parse_args()
    reference_runs = asyncio.run(bacserv_reference(args.bacserv, args.rp)) if args.bacserv else None
    phases, rp, counters, share = asyncio.run(measure(args.cycles, args.rp, args.rate, args.clients, args.firewall))
    if args.bacserv:            # before and after ours: the machine's load moves
        reference_runs += asyncio.run(bacserv_reference(args.bacserv, args.rp))
    # the reference is measured before and after the loads: the ratio is against both together
    reference = dict((b, phases["reference"]["cycles"][b] + phases["reference after"]["cycles"][b])
                     for b in phases["reference"]["cycles"])
    print("BACnet/IP on the reference site (32 meters polling on both buses); client @bacnet-js/client in its own "
          "process, one request at a time;\nRPM = Present_Value of %d AIs of one meter, cycling over the 32"
          % AIS_PER_RPM)
    print("firewall %s" % ("on (defaults)" if args.firewall else "off"))
    print("no global pacing: each client (IP address) may take %.0f %% of the loop, all together %.0f %% "
          "(daemon/loopshare.py)" % (100 * CLIENT_SHARE, 100 * LOOP_SHARE))
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
    for name, label in (("RP back to back", "RP client back to back"),
                        ("clients", "%d RP clients at once" % args.clients)):
        run = phases[name]
        ratio = max(median(run["cycles"][b]) / median(reference[b]) for b in reference)
        runs = run.get("runs", [run])
        lat = [x for r in runs for x in r["latencies"]]
        rate = sum(len(r["latencies"]) / r["elapsed"] for r in runs)
        p50, p99, top = stats(lat)
        print("%-28s %12.1f %12.1f %8.3f %8.0f %12s %10.2f %10.2f" % (
            label, 1000 * median(run["cycles"]["digiware"]), 1000 * median(run["cycles"]["rs485"]), ratio,
            rate, "%.2f/%.2f" % (p50, p99), top, run["lag"]["p99_ms"]))
    rates = [len(r["latencies"]) / r["elapsed"] for r in phases["clients"]["runs"]]
    print("%d clients at once, RP/s each: %s; max/min %.2f; errors %d" % (
        len(rates), ", ".join("%.0f" % r for r in rates), max(rates) / min(rates),
        sum(r["errors"] for r in phases["clients"]["runs"])))
    for name, run in rp.items():
        p50, p99, top = stats(run["latencies"])
        label = "at %.0f/s" % args.rate if name == "paced" else name
        print("RP (Present_Value), %s: %d requests, %.0f req/s, %d errors; latency p50 %.2f ms, p99 %.2f ms, "
              "max %.2f ms" % (label, len(run["latencies"]), len(run["latencies"]) / run["elapsed"], run["errors"],
                               p50, p99, top))
    if reference_runs:
        ours = len(rp["back to back"]["latencies"]) / rp["back to back"]["elapsed"]
        rates = sorted(len(r["latencies"]) / r["elapsed"] for r in reference_runs)
        ref = statistics.median(rates)
        lat = [x for r in reference_runs for x in r["latencies"]]
        print("reference bacserv (%s), RP lock-step, %d runs of %d: %s RP/s (median %.0f), p50 %.3f ms, errors %d"
              % (args.bacserv, len(rates), args.rp, "/".join("%.0f" % r for r in rates), ref, percentile(lat, 0.5),
                 sum(r["errors"] for r in reference_runs)))
        print("our lock-step RP rate / bacserv's: %.3f (target >= 0.2)" % (ours / ref))
    else:
        print("reference bacserv not measured: no --bacserv and none on the PATH")
    print("targets: RPM p99 <= 5 ms; poll cycle slowed <= 5 % (ratio <= 1.05); lock-step RP >= 0.2 x bacserv")
    print("client shares: %s" % ", ".join("%s=%d" % kv for kv in sorted(share.items())))
    print("server counters: %s" % ", ".join("%s=%d" % kv for kv in sorted(counters.items())))


if __name__ == "__main__":
    main()
