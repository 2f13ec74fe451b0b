"""Poll-cycle benchmark: the tiered poll plan's refresh intervals vs their wire-time bounds.

    .venv/bin/python bench/poll_cycle.py [--seconds 150] [--reference-cycles 5] [--meters inside|external|both]

Reference site (board/topologies/reference32.json): 32 meters at 8N1, 2 ms
turnaround, on the two buses, run three times in one process: at 38400 baud
with every tier read every cycle (the reference: the plan before issue 19,
every value refreshed each cycle), then with the tiered plan
(core/poll_tiers.py) at 38400 and at 115200 baud.

Wire-time bound of one request: the request and its answer on the line plus
the meter's turnaround plus the inter-frame silence; no master can be faster.
Per cycle, the bound of *what that cycle read* is the sum over its requests
(the poller records their sizes): the cycle ratio is measured / bound. Per
tier: the interval between two reads of a tier of one device (the poller's
``tier_intervals``) against the tier's bound, for the fast tier the wire time
of one pass of it over every device of the bus, for a slow tier its period
(or that wire time if larger). The instantaneous target (issue 19): every
meter's instantaneous values refreshed in <= 2.0 s at 38400 baud.

The gateway starts with an empty store, so the download of the meters'
load-curve caches (curve priority) runs during the measurement, and the
meters' event logs are checked every ``alarms.check_s`` at poll priority:
neither is in the bound; their share is printed, and a second ratio counts
the event-log checks in it. Staleness: every value of the cache is sampled
once a second during the run; a value that is not "good" on a device that
answers breaks its tier's freshness rule and is counted.

``--meters external`` runs the simulated meters in a ``tools.simbus`` process
of their own (bench.common.SimbusProcess), as on the Pi where they are
hardware: their threads then do not wake up inside the gateway's interpreter
(its GIL) between two transactions. That is the product's figure; ``inside``
(the meters as threads of the gateway's process, as before) is kept for
comparison with earlier runs. Nothing here reads the meters' objects: the
bounds come from the site's bus specs and the requests the poller records.
"""

import argparse
import asyncio
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import mean, percentile, reference_gateway, transaction_time  # noqa: E402
from core import meter_events as ev, poll_tiers  # noqa: E402
from daemon.runtime import finetimer  # noqa: E402
from daemon.runtime.poller import plan_tiers  # noqa: E402
from daemon.state.cache import GOOD  # noqa: E402

INST_TARGET_S = 2.0
CYCLE_TARGET = 1.10


def event_checks(gateway, devices, bus):
    """Event-log checks the reader has made so far on ``bus``."""
    netids = set(d.netid for d in devices if d.bus == bus)
    return sum(state.checks for netid, state in gateway.event_reader.states.items() if netid in netids)


def answer_time(engine):
    """(answers, seconds from request sent to answer in) summed over the devices of ``engine``'s bus."""
    counters = list(engine.counters.values())
    return sum(c.answers for c in counters), sum(c.total_time for c in counters)


def tier_bounds(devices, spec):
    """{tier: (requests, seconds)} of one pass of each tier over ``devices`` on a bus described by ``spec``."""
    out = {}
    for device in devices:
        for tier, reads in plan_tiers(device).items():
            n, t = out.get(tier, (0, 0.0))
            out[tier] = (n + len(reads), t + sum(transaction_time(spec, r.count) for r in reads))
    return out


@contextlib.contextmanager
def every_tier_every_cycle():
    """The reference plan: every tier due at every cycle (periods 0), as before the tiers."""
    saved = dict(poll_tiers._PERIOD)
    poll_tiers._PERIOD.update(dict.fromkeys(saved, 0))
    try:
        yield
    finally:
        poll_tiers._PERIOD.update(saved)


def stale_values(gateway):
    """{tier: values not good} over every device that answers (comm-lost devices are not counted)."""
    cache, out = gateway.cache, {}
    for address in cache.addresses():
        if cache.comm_lost(address):
            continue
        for load in cache.loads(address):
            for key in cache.keys(address, load):
                if cache.get(address, load, key).quality != GOOD:
                    tier = poll_tiers.tier_of(key)
                    out[tier] = out.get(tier, 0) + 1
    return out


async def measure(baud, seconds=None, cycles=None, external=False):
    """Run the reference site at ``baud`` for ``seconds`` (or until every bus made ``cycles`` cycles);
    ``external``: the meters answer from a process of their own."""
    async with reference_gateway(baud=baud, external_meters=external) as gateway:
        buses, devices, pollers = gateway.board.topology["buses"], gateway.topology.devices, gateway.pollers
        loop = asyncio.get_running_loop()
        seen = dict((b, p.cycles) for b, p in pollers.items())
        start_counts = dict(seen)
        start_classes = dict((b, list(gateway.engines[b].class_counts)) for b in pollers)
        start_checks = dict((b, event_checks(gateway, devices, b)) for b in pollers)
        start_wire = dict((b, (sum(gateway.engines[b].class_attempts), sum(gateway.engines[b].class_bytes)))
                          for b in pollers)
        start_answers = dict((b, answer_time(gateway.engines[b])) for b in pollers)
        for poller in pollers.values():
            for intervals in poller.tier_intervals.values():
                intervals.clear()
        times = dict((b, []) for b in pollers)
        registers = dict((b, []) for b in pollers)
        stale, samples = {}, 0
        gateway.looplag.reset()
        started = loop.time()
        next_sample = started + 1.0
        while True:
            await asyncio.sleep(0.05)
            for bus, poller in pollers.items():
                new = poller.cycles - seen[bus]
                if new:
                    times[bus] += list(poller.cycle_times)[-new:]
                    registers[bus] += list(poller.cycle_registers)[-new:]
                    seen[bus] = poller.cycles
            if loop.time() >= next_sample:
                next_sample += 1.0
                samples += 1
                for tier, n in stale_values(gateway).items():
                    stale[tier] = stale.get(tier, 0) + n
            if seconds is not None and loop.time() - started >= seconds:
                break
            if cycles is not None and min(p.cycles - start_counts[b] for b, p in pollers.items()) >= cycles:
                break
        elapsed = loop.time() - started
        results = {}
        for bus, poller in pollers.items():
            spec = buses[bus]
            engine = gateway.engines[bus]
            attempts = sum(engine.class_attempts) - start_wire[bus][0]
            nbytes = sum(engine.class_bytes) - start_wire[bus][1]
            wire_all = nbytes * engine.char_time + attempts * (spec.get("turnaround_ms", 2) / 1000.0 + engine.gap)
            answers, answering = (a - b for a, b in zip(answer_time(engine), start_answers[bus], strict=True))
            # per transaction: the meters' time beyond the wire and their turnaround (send -> answer in), and
            # the master's beyond the silence (answer in -> next request out)
            meters_s = (answering - nbytes * engine.char_time - attempts * spec.get("turnaround_ms", 2) / 1000.0)
            master_s = elapsed - answering - attempts * engine.gap
            on_bus = [d for d in devices if d.bus == bus]
            n = len(times[bus])
            bounds = [sum(transaction_time(spec, c) for c in counts) for counts in registers[bus]]
            checks = event_checks(gateway, devices, bus) - start_checks[bus]
            check_time = checks / float(max(1, n)) * transaction_time(spec, ev.HEADER_WORDS)
            results[bus] = {"cycles": n, "mean": mean(times[bus]), "p99": percentile(times[bus], 0.99),
                            "bound": mean(bounds), "check_time": check_time,
                            "checks_per_cycle": checks / float(max(1, n)), "devices": len(on_bus),
                            "tiers": tier_bounds(on_bus, spec),
                            "intervals": dict((t, list(v)) for t, v in poller.tier_intervals.items() if v),
                            "elapsed": elapsed, "wire_all": wire_all, "attempts": attempts, "answers": answers,
                            "meters_s": meters_s, "master_s": master_s,
                            "errors": sum(c.timeouts + c.crc_errors for c in gateway.engines[bus].counters.values()),
                            "classes": [a - b for a, b in zip(gateway.engines[bus].class_counts,
                                                              start_classes[bus], strict=True)]}
        return results, gateway.looplag.summary(), stale, samples


def print_cycles(title, results, lag):
    print(title)
    print("%-9s %7s %7s %11s %11s %11s %7s %7s" % ("bus", "devices", "cycles", "bound ms", "mean ms", "p99 ms",
                                                   "ratio", "errors"))
    for bus, r in results.items():
        print("%-9s %7d %7d %11.1f %11.1f %11.1f %7.3f %7d" % (
            bus, r["devices"], r["cycles"], 1000 * r["bound"], 1000 * r["mean"], 1000 * r["p99"],
            r["mean"] / r["bound"], r["errors"]))
    for bus, r in results.items():
        poll, curve = r["classes"][1], r["classes"][2]
        print("%-9s %d poll, %d curve-download transactions (%.1f %% of the bus); event-log checks %.1f per cycle, "
              "%.1f ms of wire time per cycle: ratio %.3f with them in the bound"
              % (bus, poll, curve, 100.0 * curve / max(1, poll + curve), r["checks_per_cycle"],
                 1000 * r["check_time"], r["mean"] / (r["bound"] + r["check_time"])))
    for bus, r in results.items():
        print("%-9s every transaction on the bus (poll, curve download, event log): wire-time bound %.2f s in %.2f s,"
              " ratio %.3f" % (bus, r["wire_all"], r["elapsed"], r["elapsed"] / r["wire_all"]))
    for bus, r in results.items():
        n = max(1, r["attempts"])
        print("%-9s per transaction (%d, %d answered): the meters %.2f ms beyond wire + turnaround, the master %.2f ms"
              " beyond the silence between an answer and the next request" % (
                  bus, r["attempts"], r["answers"], 1000 * r["meters_s"] / n, 1000 * r["master_s"] / n))
    print("event-loop lag: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d samples"
          % (lag["p50_ms"], lag["p99_ms"], lag["max_ms"], lag["samples"]))


def print_tiers(results, stale, samples):
    print("%-9s %-10s %6s %9s %11s %10s %10s %10s %10s %7s" % (
        "bus", "tier", "every", "requests", "pass ms", "bound s", "mean s", "p99 s", "max s", "ratio"))
    for bus, r in results.items():
        for tier in poll_tiers.NAMES:
            if tier not in r["tiers"]:
                continue
            requests, wire = r["tiers"][tier]
            every = poll_tiers.period(tier)
            bound = max(every, wire)
            got = r["intervals"].get(tier, [])
            if not got:
                print("%-9s %-10s %6d %9d %11.1f %10.3f %10s" % (bus, tier, every, requests, 1000 * wire, bound,
                                                                   "(not re-read during the run)"))
                continue
            print("%-9s %-10s %6d %9d %11.1f %10.3f %10.3f %10.3f %10.3f %7.3f" % (
                bus, tier, every, requests, 1000 * wire, bound, mean(got), percentile(got, 0.99), max(got),
                mean(got) / bound))
    print("values not good on answering devices, sampled once a second (%d samples): %s"
          % (samples, ", ".join("%s %d" % kv for kv in sorted(stale.items())) or "none"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=150.0, help="tiered runs: seconds at each speed")
    parser.add_argument("--reference-cycles", type=int, default=5, help="reference run: cycles per bus")
    parser.add_argument("--meters", choices=("external", "inside", "both"), default="external",
                        help="where the simulated meters run: a process of their own (the product's figure), "
                             "threads of the gateway's process, or both in turn")
    parser.add_argument("--silence", choices=("fine", "loop", "both"), default="fine",
                        help="the master's inter-frame silence: on a timerfd (daemon/runtime/finetimer.py, the "
                             "product) or on the loop's whole-millisecond timers (before), or both in turn")
    parser.add_argument("--bauds", default="38400,115200", help="tiered runs: the speeds, comma-separated")
    args = parser.parse_args()
    for external in {"external": (True,), "inside": (False,), "both": (True, False)}[args.meters]:
        for fine in {"fine": (True,), "loop": (False,), "both": (False, True)}[args.silence]:
            with silence_timer(fine):
                run(args, external, fine)


@contextlib.contextmanager
def silence_timer(fine):
    """``fine`` False: the bus engines wait for the inter-frame silence on the loop's timers (as before)."""
    saved = finetimer._LIBC
    if not fine:
        finetimer._LIBC = None
    try:
        yield
    finally:
        finetimer._LIBC = saved


def run(args, external, fine=True):
    where = "meters in a process of their own" if external else "meters as threads of the gateway's process"
    where += ", silence on the %s" % ("timerfd" if fine else "loop's timers")
    print("== %s" % where)
    with every_tier_every_cycle():
        ref, ref_lag, _s, _n = asyncio.run(measure(38400, cycles=args.reference_cycles, external=external))
    print_cycles("reference: every tier every cycle (the plan before issue 19), 38400 baud, %d cycles per bus"
                 % args.reference_cycles, ref, ref_lag)
    summary = []
    for baud in [int(b) for b in args.bauds.split(",")]:
        results, lag, stale, samples = asyncio.run(measure(baud, seconds=args.seconds, external=external))
        print()
        print_cycles("tiered plan (core/poll_tiers.py), %d baud, %.0f s, %s" % (baud, args.seconds, where),
                     results, lag)
        print_tiers(results, stale, samples)
        slow = max(results, key=lambda b: results[b]["tiers"][poll_tiers.FAST][1])
        inst = results[slow]["intervals"].get(poll_tiers.FAST, [float("nan")])
        cycle = max(r["mean"] / r["bound"] for r in results.values())
        busy = max(r["elapsed"] / r["wire_all"] for r in results.values())
        summary.append((baud, slow, mean(inst), max(inst), results[slow]["tiers"][poll_tiers.FAST][1], cycle,
                        busy, sum(stale.values())))
    print()
    ref_full = max(r["mean"] for r in ref.values())
    print("%s; reference, every value every cycle at 38400: %.3f s (slower bus)" % (where, ref_full))
    for baud, bus, inst_mean, inst_max, wire, cycle, busy, n_stale in summary:
        print("%6d baud: instantaneous values refreshed every %.3f s (max %.3f s) on %s, wire-time bound %.3f s "
              "(%.3f x); %.2f x the reference; cycle / bound of its poll reads %.3f, elapsed / bound of every "
              "transaction %.3f (target <= %.2f); values not good: %d%s"
              % (baud, inst_mean, inst_max, bus, wire, inst_mean / wire, inst_mean / ref_full, cycle, busy,
                 CYCLE_TARGET, n_stale, "; target <= %.1f s" % INST_TARGET_S if baud == 38400 else ""))


if __name__ == "__main__":
    main()
