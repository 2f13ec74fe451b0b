"""Modbus TCP benchmark: cached reads under 32 clients, poll-cycle slowdown,
pass-through latency against the wire-time lower bound.

    .venv/bin/python bench/modbus_tcp.py [--seconds 30]

The reference site (32 meters) polls on both buses. Phase 1 measures the
poll cycle with no Modbus TCP clients; phase 2 runs 32 connections in a
separate process (bench/modbus_load.py), each reading registers the poll
plan covers (answered from the cache), for the duration; phase 3 sends
pass-through reads (a block the poller does not read) one at a time and
compares them with the wire time of that request on the bus.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import REPO, free_port, mean, percentile, reference_gateway, transaction_time  # noqa: E402
from core import (
    catalogue,  # noqa: E402
    modbus_rtu as rtu,  # noqa: E402
)
from protocols.modbus.tcp import ModbusTcpService  # noqa: E402


async def cycles_over(poller, n):
    start = poller.cycles
    while poller.cycles < start + n:
        await asyncio.sleep(0.05)
    return list(poller.cycle_times)[-n:]


async def passthrough_latencies(port, unit, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # the meter's clock (0xE100): neither polled nor fixed; the identification block is answered from the
    # words learnt once since issue 19 (bench/passthrough.py measures both against mbusd)
    pdu = rtu.read_request(3, 0xE100, 4)
    out = []
    for t in range(n):
        sent = time.perf_counter()
        writer.write(bytes((0, t & 0xFF, 0, 0, 0, len(pdu) + 1, unit)) + pdu)
        header = await reader.readexactly(7)
        await reader.readexactly(header[5] - 1)
        out.append(time.perf_counter() - sent)
        await asyncio.sleep(0.02)
    writer.close()
    return out


async def run(seconds):
    port = free_port()
    async with reference_gateway({"modbus.port": port, "modbus.bind": "127.0.0.1"}, [ModbusTcpService]) as gateway:
        digiware = gateway.pollers["digiware"]
        baseline = await cycles_over(digiware, 4)
        # phase 2: 32 clients on cached registers of an A-40 (RS485) and an I-35 (Digiware)
        before = dict(gateway.services[0].handler.counters.as_dict())
        gateway.looplag.reset()
        start_cycles = digiware.cycles
        load = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(REPO, "bench", "modbus_load.py"), "--port", str(port),
            "--seconds", str(seconds), "--unit", "2", "--start", str(catalogue.load_base(1) + 26), "--count", "8",
            stdout=subprocess.PIPE)
        out, _ = await load.communicate()
        result = json.loads(out)
        n = digiware.cycles - start_cycles
        loaded = list(digiware.cycle_times)[-max(1, n - 1):]
        lag = gateway.looplag.summary()
        counters = gateway.services[0].handler.counters.as_dict()
        cached = counters["from_cache"] - before["from_cache"]
        # phase 3: pass-through on the RS485 bus (A-40 at 30), one at a time
        spec = gateway.board.topology["buses"]["rs485"]
        bounds = transaction_time(spec, 4), transaction_time(spec, 125)
        through = await passthrough_latencies(port, 30, 100)
        return baseline, loaded, result, cached, lag, through, bounds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    baseline, loaded, result, cached, lag, through, (bound, longest_poll) = asyncio.run(run(args.seconds))
    rate = result["requests"] / result["seconds"]
    print("Modbus TCP, reference site (32 meters polling), 32 client connections for %.0f s" % result["seconds"])
    print("cached reads: %d requests, %.0f req/s, errors %d, from cache %d" % (result["requests"], rate,
                                                                            result["errors"], cached))
    print("cached latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (target p99 <= 5 ms)"
          % (1000 * result["p50"], 1000 * result["p99"], 1000 * result["max"]))
    slow = mean(loaded) / mean(baseline)
    print("digiware poll cycle: %.1f ms without clients, %.1f ms with clients: slowdown %.3f (target <= 1.05)"
          % (1000 * mean(baseline), 1000 * mean(loaded), slow))
    print("pass-through (4 registers from an A-40): p50 %.1f ms, p99 %.1f ms; wire-time bound %.1f ms; "
          "ratio p50/bound %.2f" % (1000 * percentile(through, 0.5), 1000 * percentile(through, 0.99),
                                    1000 * bound, percentile(through, 0.5) / bound))
    print("  (a pass-through waits for the poll transaction already on the wire: up to one 125-register "
          "read, %.1f ms)" % (1000 * longest_poll))
    print("event-loop lag under load: p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (lag["p50_ms"], lag["p99_ms"],
                                                                              lag["max_ms"]))


if __name__ == "__main__":
    main()
