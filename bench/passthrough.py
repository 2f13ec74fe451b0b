"""Pass-through benchmark: our gateway against mbusd on identical simulated buses.

    .venv/bin/python bench/passthrough.py [--seconds 30] [--rate 10] [--runs 3] [--mbusd-src DIR]
        [--pace fit|on|off|both|all|on,fit] [--jitter 0.2] [--idle-share S]

Our gateway polls the reference site (32 meters, both buses, 38400 8N1) and
forwards Modbus TCP reads to the RS485 bus; mbusd (the C Modbus TCP->RTU
gateway, 3cky/mbusd, built here from its source with cmake) forwards the same
reads to a copy of that bus: the same 12 simulated meters (board/simbus.py, the
same seeds and timing) on a pseudo-terminal served by ``python -m tools.simbus``
in a separate process. mbusd owns its bus; ours polls meanwhile.

One client process (``--client``, the same code for both) sends one read of 4
registers every 1/rate seconds (jittered +-20 %, lock-step: never two in flight)
to the A-40 at address 30, registers 0xE100.. (its clock: neither polled nor
static, so every read goes to the wire). Printed: p50/p99 of both, the ratio,
the wire-time bound of the request, our RS485 poll cycle with and without the
pass-through load (the slowdown), and the static identification block read
through ours (frames on the wire counted).

mbusd runs with ``-R 2`` (2 ms pause between requests, about the 1.75 ms
inter-frame silence; its default 100 ms would only slow it) and its defaults
otherwise.
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    SimbusProcess,
    board_with_external_meters,
    free_port,
    load_reference,
    mean,
    percentile,
    reference_gateway,
    stop_process,
    transaction_time,
)
from core import catalogue, modbus_rtu as rtu  # noqa: E402

UNIT = 30                       # a DIRIS A-40 on the RS485 port of the reference site
START, COUNT = 0xE100, 4        # its clock registers: dynamic, not in the poll plan
MBUSD_GIT = "https://github.com/3cky/mbusd"


# ---------------------------------------------------------------- the client (a process of its own)

async def client(port, unit, start, count, rate, seconds, seed=7, jitter=0.2):
    """Latencies (s) of lock-step reads at ``rate``/s, exceptions counted apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pdu = rtu.read_request(rtu.READ_HOLDING, start, count)
    rnd = random.Random(seed)
    out, errors, codes = [], 0, {}
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    t = 0
    while time.monotonic() < end:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t += 1
        sent = time.perf_counter()
        writer.write(bytes((t >> 8 & 0xFF, t & 0xFF, 0, 0, 0, len(pdu) + 1, unit)) + pdu)
        header = await reader.readexactly(7)
        body = await reader.readexactly(header[5] - 1)
        elapsed = time.perf_counter() - sent
        if body[0] & 0x80:
            errors += 1
            codes[body[1]] = codes.get(body[1], 0) + 1
        else:
            out.append(elapsed)
        next_at += rnd.uniform(1 - jitter, 1 + jitter) / rate
    writer.close()
    return {"latencies": out, "errors": errors, "codes": codes}


async def run_client(port, rate, seconds, unit=UNIT, start=START, count=COUNT, jitter=0.2):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "--client", "--port", str(port), "--rate", str(rate),
        "--seconds", str(seconds), "--unit", str(unit), "--start", str(start), "--count", str(count),
        "--jitter", str(jitter),
        stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    return json.loads(out)


# ---------------------------------------------------------------- mbusd on its copy of the bus

def build_mbusd(src):
    """The mbusd binary built from ``src`` (cloned from GitHub when absent) with cmake."""
    binary = os.path.join(src, "build", "mbusd")
    if os.path.exists(binary):
        return binary
    if not os.path.isdir(src):
        subprocess.run(["git", "clone", "--depth", "1", MBUSD_GIT, src], check=True)
    subprocess.run(["cmake", "-S", src, "-B", os.path.join(src, "build"), "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", os.path.join(src, "build"), "-j", "2"], check=True, stdout=subprocess.DEVNULL)
    return binary


class Mbusd:
    """mbusd on its own tools.simbus copy of the RS485 bus."""

    def __init__(self, binary, spec, port):
        self.sim = SimbusProcess({"buses": {"rs485": spec}})
        tty = self.sim.ttys["rs485"]
        mode = "8%s%d" % (spec.get("parity", "N"), spec.get("stop_bits", 1))
        self.proc = subprocess.Popen([binary, "-d", "-L", "-", "-v", "0", "-p", tty, "-s", str(spec.get("baud", 38400)),
                                      "-m", mode, "-A", "127.0.0.1", "-P", str(port), "-R", "2"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = port

    async def ready(self):
        for _ in range(100):
            try:
                _r, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("mbusd did not start")

    def close(self):
        stop_process(self.proc)
        self.sim.close()


# ---------------------------------------------------------------- one run

async def cycles_over(poller, n):
    start = poller.cycles
    while poller.cycles < start + n:
        await asyncio.sleep(0.05)
    return list(poller.cycle_times)[-n:]


async def static_reads(port, engine, n=20):
    """Identification reads (4 words at 0xC350) through ours: latencies and frames put on the wire."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pdu = rtu.read_request(rtu.READ_HOLDING, catalogue.IDENT_BASE, 4)
    frames_before = engine.class_counts[0]
    out = []
    for t in range(n):
        sent = time.perf_counter()
        writer.write(bytes((0, t, 0, 0, 0, len(pdu) + 1, UNIT)) + pdu)
        header = await reader.readexactly(7)
        await reader.readexactly(header[5] - 1)
        out.append(time.perf_counter() - sent)
    writer.close()
    return out, engine.class_counts[0] - frames_before


async def one_run(args, binary):
    port, mport = free_port(), free_port()
    settings = {"modbus.port": port, "modbus.bind": "127.0.0.1"}
    if args.min_cycle_ms:
        settings["poll.min_cycle_ms"] = args.min_cycle_ms
    ours_sim = SimbusProcess({"buses": {"rs485": load_reference()["buses"]["rs485"]}})
    try:
        return await _one_run(args, binary, settings, port, mport, ours_sim)
    finally:
        ours_sim.close()


async def _one_run(args, binary, settings, port, mport, ours_sim):
    from protocols.modbus.tcp import ModbusTcpService
    board = board_with_external_meters(ours_sim.ttys)
    async with reference_gateway(settings, [ModbusTcpService], board) as gateway:
        spec = gateway.board.topology["buses"]["rs485"]
        rs485 = gateway.pollers["rs485"]
        engine = gateway.engines["rs485"]
        mbusd = Mbusd(binary, spec, mport)
        try:
            await mbusd.ready()
            baseline = await cycles_over(rs485, args.cycles)
            start_cycles = rs485.cycles
            counts = engine.split_pieces, engine.fit_pieces, engine.fit_idle_s
            ours = await run_client(port, args.rate, args.seconds, jitter=args.jitter)
            counts = [after - before for after, before in
                      zip((engine.split_pieces, engine.fit_pieces, engine.fit_idle_s), counts, strict=True)]
            n = rs485.cycles - start_cycles
            loaded = list(rs485.cycle_times)[-max(1, n - 1):]
            after = await cycles_over(rs485, args.cycles)
            theirs = await run_client(mport, args.rate, args.seconds, jitter=args.jitter)
            static, frames = await static_reads(port, engine)
        finally:
            mbusd.close()
        bound = transaction_time(spec, COUNT)
    return {"ours": ours, "mbusd": theirs, "baseline": baseline + after, "loaded": loaded,
            "bound": bound, "static": static, "static_frames": frames, "pieces": counts}


def summary(run):
    ours, theirs = run["ours"]["latencies"], run["mbusd"]["latencies"]
    p50, p99 = percentile(ours, 0.5), percentile(ours, 0.99)
    m50, m99 = percentile(theirs, 0.5), percentile(theirs, 0.99)
    return {"p50": p50, "p99": p99, "m50": m50, "m99": m99, "ratio": p50 / m50, "bound_ratio": p50 / run["bound"],
            "slowdown": mean(run["loaded"]) / mean(run["baseline"]), "n": len(ours), "mn": len(theirs),
            "errors": run["ours"]["errors"], "merrors": run["mbusd"]["errors"],
            "codes": run["ours"]["codes"], "mcodes": run["mbusd"]["codes"],
            "cycle": mean(run["baseline"]), "cycle_loaded": mean(run["loaded"]),
            "static_p50": percentile(run["static"], 0.5), "static_frames": run["static_frames"],
            "bound": run["bound"], "pieces": run["pieces"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=10, help="RS485 poll cycles measured without load")
    parser.add_argument("--mbusd-src", default=os.environ.get("MBUSD_SRC", "/tmp/mbusd-src"))
    parser.add_argument("--split", type=int, help="bus.SPLIT_WORDS for this run (default: the engine's)")
    parser.add_argument("--pace", default="fit",
                        help="how poll reads share the bus with pass-through, one mode or several separated by "
                             "commas, measured in turn within each run: fit (the product: pieces sized to end "
                             "before the next forwarded request, the line left idle for it, bus.FIT_SCHEDULING), "
                             "on (whole reads when the client's steady pace leaves room, else SPLIT_WORDS pieces: "
                             "bus.PassthroughPace alone), off (SPLIT_WORDS pieces whenever pass-through is active); "
                             "both = off,on; all = off,on,fit")
    parser.add_argument("--jitter", type=float, default=0.2,
                        help="the client's gaps are 1/rate x uniform(1-jitter, 1+jitter) (0.2: the issue's runs)")
    parser.add_argument("--idle-share", type=float, help="bus.FIT_IDLE_SHARE for this run (default: the engine's)")
    parser.add_argument("--min-cycle-ms", type=int, default=0,
                        help="poll.min_cycle_ms (e.g. 60000: a bus idle between cycles, our overhead alone)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--unit", type=int, default=UNIT)
    parser.add_argument("--start", type=int, default=START)
    parser.add_argument("--count", type=int, default=COUNT)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client(args.port, args.unit, args.start, args.count, args.rate, args.seconds,
                                            jitter=args.jitter))))
        return
    binary = build_mbusd(args.mbusd_src)
    from daemon.runtime import bus
    if args.split:
        bus.SPLIT_WORDS = args.split
    if args.idle_share is not None:
        bus.FIT_IDLE_SHARE = args.idle_share
    print("poll reads split in pieces of <= %d registers while pass-through is active" % bus.SPLIT_WORDS)
    print("pass-through, one client at %.0f req/s (jitter +-%.0f %%) for %.0f s per gateway, 4 registers of an A-40 "
          "(RS485, 38400 8N1); fit idle share %.2f; load average %s"
          % (args.rate, 100 * args.jitter, args.seconds, bus.FIT_IDLE_SHARE,
             " ".join("%.2f" % x for x in os.getloadavg())))
    print("run  ours p50/p99 ms   mbusd p50/p99 ms   p50 ratio  p50/bound  rs485 cycle ms (idle -> loaded) slowdown"
          "  static p50 ms, frames")
    modes = {"both": ("off", "on"), "all": ("off", "on", "fit")}.get(args.pace, tuple(args.pace.split(",")))
    if not set(modes) <= {"off", "on", "fit"}:
        parser.error("--pace: fit, on, off, both or all (or a comma-separated list of fit, on, off)")
    gaps = bus.PACE_GAPS
    by_mode = dict((m, []) for m in modes)
    for n in range(args.runs):
        for mode in modes:
            bus.PACE_GAPS = gaps if mode != "off" else 10 ** 9       # off: the pace is never known, every read is split
            bus.FIT_SCHEDULING = mode == "fit"
            row = summary(asyncio.run(one_run(args, binary)))
            by_mode[mode].append(row)
            print_row(n, row, "pace %s" % mode)
    rows = [row for mode_rows in by_mode.values() for row in mode_rows]
    bound = rows[0]["bound"]
    floor = 1 + args.rate * bound
    print("wire-time bound of one read: %.1f ms; %d/%d samples per run (ours/mbusd)" % (1000 * bound, rows[0]["n"],
                                                                                   rows[0]["mn"]))
    print("slowdown floor of the bus share alone: %.3f (%.0f reads/s x %.1f ms on the same bus)"
          % (floor, args.rate, 1000 * bound))
    for mode, mode_rows in by_mode.items():
        if len(mode_rows) < 2:
            continue
        for key, label in (("ratio", "p50 ratio"), ("p50", "ours p50 s"), ("p99", "ours p99 s"),
                           ("slowdown", "slowdown")):
            values = sorted(r[key] for r in mode_rows)
            print("pace %-3s median %s %.4f (spread %.4f..%.4f)" % (mode, label,
                                                                   values[len(values) // 2], values[0], values[-1]))
    print("targets: p50 <= 1.5 x mbusd, p50 <= 2.5 x bound, p99 <= 40 ms, slowdown <= 1.05")


def print_row(n, row, label):
    print("%3d  %6.1f / %6.1f   %6.1f / %6.1f    %6.2f    %6.2f     %7.1f -> %7.1f   %6.3f     %.2f, %d   %s"
          % (n + 1, 1000 * row["p50"], 1000 * row["p99"], 1000 * row["m50"], 1000 * row["m99"], row["ratio"],
             row["bound_ratio"], 1000 * row["cycle"], 1000 * row["cycle_loaded"], row["slowdown"],
             1000 * row["static_p50"], row["static_frames"], label))
    split, fit, idle = row["pieces"]
    print("     poll pieces on the wire %d (of which fit %d), line left idle for expected requests %.2f s"
          % (split, fit, idle))
    if row["errors"] or row["merrors"]:
        print("     exception answers (code: count): ours %s, mbusd %s" % (row["codes"], row["mcodes"]))

if __name__ == "__main__":
    main()
