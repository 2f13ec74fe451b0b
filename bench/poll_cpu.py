"""CPU per poll transaction (issue 19, target 6): what the loop thread spends on one answer after the wire.

    PYTHONPATH=. .venv/bin/python bench/poll_cpu.py [--repeats 5] [--rounds 20]

The reference site (board/topologies/reference32.json): its 32 meters are simulated in this process
(board/sim.py's make_meter, not started: no threads) and answer every read of the gateway's poll plan
(daemon/runtime/poller.py's plan_tiers) once, before anything is timed. Timed, in-process, on the loop
thread's code: for each answer, ``rtu.parse_response`` (CRC and checks) and the poller's
``_store`` (words, decode, cache writes and every listener the daemon has: the extremes, the web's live monitor,
SNMP's input-change traps), the gateway built but not started. CPU time (``time.thread_time``) per
transaction, over the fast tier's reads (those of every cycle) and over every tier's.

References measured in the same run, on the same answers: the bare ``struct.unpack`` of each answer's
registers, and the CRC alone (``rtu.crc16`` of the frame). Median and spread of ``--repeats`` runs.
Run with ``PYTHONPATH`` on a copy of an older tree (its ``_store`` took the words), it measures that tree:
the before figure of bench/RESULTS.md.
"""

import argparse
import asyncio
import inspect
import os
import statistics
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import load_reference  # noqa: E402
from board.sim import SimBoard, make_meter  # noqa: E402
from core import modbus_rtu as rtu, poll_tiers  # noqa: E402
from daemon.gateway import Gateway  # noqa: E402
from daemon.runtime.poller import BusPoller, answer_words  # noqa: E402
from daemon.security.rights import Caller  # noqa: E402
from daemon.state.topology import devices_from_simulation  # noqa: E402
from protocols.snmp.traps import TrapSender  # noqa: E402
from webconfig.monitor_live import LiveValues  # noqa: E402


def transactions(gateway, topology):
    """[(poller, address, tier, read, request pdu, answer frame)] of every read of every device's plan."""
    meters = {}
    for index, (name, spec) in enumerate(sorted(topology["buses"].items())):
        for i, m in enumerate(spec.get("meters", [])):
            meters[(name, int(m["address"]))] = make_meter(m, gateway.clock, seed=100 + index * 40 + i)
    out = []
    for name in sorted(topology["buses"]):
        poller = BusPoller(name, None, gateway.topology, gateway.cache, gateway.alarms, gateway.settings,
                           gateway.clock)
        poller._sync_topology()
        for address, state in sorted(poller.states.items()):
            meter = meters[(name, address)]
            for tier, reads in state.tiers.items():
                for read in reads:
                    pdu = rtu.read_request(read.function, read.start, read.count)
                    frame = rtu.add_crc(bytes((address,)) + meter.handle_pdu(pdu))
                    out.append((poller, address, tier, read, pdu, frame))
    return out


def path_after(txs):
    """The timed path: CRC and checks, words, decode, cache, listeners."""
    for poller, address, tier, read, pdu, frame in txs:
        answered = rtu.parse_response(frame, address, pdu)
        poller._store(address, read, answered, tier)


def path_before(txs):
    """The same on a tree before the compiled decoders, whose ``_store`` took the words (the before figure)."""
    for poller, address, tier, read, pdu, frame in txs:
        answered = rtu.parse_response(frame, address, pdu)
        poller._store(address, read, answer_words(read, answered), tier)


def unpack(txs):
    """Reference: the bare struct unpack of each answer's registers."""
    for _p, _a, _t, _r, _pdu, frame in txs:
        struct.unpack(">%dH" % ((len(frame) - 5) // 2), frame[3:-2])


def crc(txs):
    """Reference: the CRC alone."""
    for _p, _a, _t, _r, _pdu, frame in txs:
        rtu.crc16(frame[:-2])


def cpu_us(function, txs, rounds):
    """CPU microseconds of one transaction of ``function`` over ``rounds`` passes of ``txs``."""
    started = time.thread_time()
    for _ in range(rounds):
        function(txs)
    return (time.thread_time() - started) * 1e6 / (rounds * len(txs))


async def run(args):
    topology = load_reference()
    with tempfile.TemporaryDirectory(prefix="bench-") as state:
        gateway = Gateway(SimBoard(topology=topology), state, {})
        try:
            await gateway.topology.replace(devices_from_simulation(topology))
            door = gateway.door(Caller("bench"))
            LiveValues(door)
            TrapSender(door)
            txs = transactions(gateway, topology)
            if "words" in inspect.signature(BusPoller._store).parameters:
                path = path_before                      # bench run with PYTHONPATH on an older tree
            else:
                path = path_after
            fast = [t for t in txs if t[2] == poll_tiers.FAST]
            path(txs)                                   # warm: first values, extremes' entries
            rows = {"fast": [], "all": [], "unpack": [], "crc": []}
            for _ in range(args.repeats):
                rows["fast"].append(cpu_us(path, fast, args.rounds))
                rows["all"].append(cpu_us(path, txs, args.rounds))
                rows["unpack"].append(cpu_us(unpack, fast, args.rounds))
                rows["crc"].append(cpu_us(crc, fast, args.rounds))
        finally:
            gateway.board.close()
    words = statistics.mean(r.count for _p, _a, _t, r, _pdu, _f in fast)
    print("%d transactions in the plan, %d of the fast tier (mean %.1f registers); load average %.2f"
          % (len(txs), len(fast), words, os.getloadavg()[0]))
    ref = statistics.median(rows["unpack"])
    for name, label in (("fast", "path, fast tier"), ("all", "path, every tier"),
                        ("unpack", "reference: struct unpack"), ("crc", "reference: CRC alone")):
        values = rows[name]
        print("%-26s %8.1f us/transaction (%.1f-%.1f)  = %6.1f x the unpack"
              % (label, statistics.median(values), min(values), max(values), statistics.median(values) / ref))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20, help="passes over the plan per repeat")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
