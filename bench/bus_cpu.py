"""Loop-thread CPU per poll transaction on a real (pseudo-terminal) bus, waits included (issue 19, target 6).

    PYTHONPATH=. .venv/bin/python bench/bus_cpu.py [--seconds 10] [--runs 3] [--profile FILE]

The reference site's 32 meters answer from a ``tools.simbus`` process (bench/common.py's SimbusProcess); a
Gateway in this process, no protocol service, polls both buses at 38400 baud. Over ``--seconds`` of steady
polling: the loop thread's CPU (``time.thread_time``) divided by the transactions both engines put on the wire.
Unlike bench/poll_cpu.py (the decode of an answer alone), this counts the engine's waiting: the silence's
timer, the request's write, the answer's wake-ups and timeouts, the poller's turn. The reference in the same
run: the loop thread's CPU per iteration of an ``asyncio.sleep(0.001)`` loop (one timer wake-up of the loop),
before the gateway starts.
"""

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import reference_gateway  # noqa: E402


def attempts(gateway):
    return sum(sum(engine.class_attempts) for engine in gateway.engines.values())


async def idle_wakeup_us(count=2000):
    start = time.thread_time()
    for _ in range(count):
        await asyncio.sleep(0.001)
    return (time.thread_time() - start) / count * 1e6


async def measure(seconds, runs, profile):
    out = []
    references = [await idle_wakeup_us() for _ in range(runs)]        # before the gateway: the loop alone
    async with reference_gateway(external_meters=True) as gateway:
        await asyncio.sleep(2.0)
        for reference in references:
            n0, c0 = attempts(gateway), time.thread_time()
            if profile:
                prof = cProfile.Profile(time.thread_time)
                prof.enable()
            await asyncio.sleep(seconds)
            if profile:
                prof.disable()
                prof.dump_stats(profile)
            n, cpu = attempts(gateway) - n0, time.thread_time() - c0
            out.append((cpu / n * 1e6, n / seconds, reference))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="cProfile (thread CPU) of the last run into this file")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.seconds, args.runs, args.profile))
    for per, rate, ref in rows:
        print("loop CPU %6.1f us per transaction (%.1f transactions/s, %.2f %% of a core); idle timer wake-up %.1f us"
              " = %.1f x" % (per, rate, per * rate / 1e4, ref, per / ref))
    per = [r[0] for r in rows]
    print("median %.1f us per transaction (spread %.1f-%.1f)" % (statistics.median(per), min(per), max(per)))


if __name__ == "__main__":
    main()
