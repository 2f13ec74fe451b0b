"""No client stalls the loop: one client floods each northbound protocol in turn, as fast as it can.

    .venv/bin/python bench/fairness.py [--cycles 3] [--firewall on,off] [--meters external|inprocess]
                                       [--http-probe home|status] [--profile FILE] [--floods http,...]
                                       [--http-flood-reader copy|into]

The reference site (board/topologies/reference32.json, 32 meters) polling on both buses, the gateway in
this process with Modbus TCP, SNMP, BACnet/IP and the web server on loopback ports. The meters answer
from a process of their own by default (``--meters external``, a tools.simbus process, as real meters
from their own hardware); ``inprocess`` runs them as threads of the gateway's process, where their
wake-ups share its interpreter lock and show in the loop's lag. Phases, each lasting ``--cycles``
whole poll cycles of every bus: a quiet reference, then one flood per protocol, then a quiet reference
again. The flooding client (127.0.0.1, a process of its own, never waiting for an answer before asking
again):

* modbus: one connection, windows of 64 pipelined reads of the gateway table (unit 255, 8 registers);
* snmp: v2c GETs of sysUpTime, windows of 64 datagrams, the answers read as they come;
* bacnet: ReadPropertyMultiple of the Present_Value of 20 Analog Inputs of one meter, windows of 64;
* http: one keep-alive connection, windows of 16 pipelined GET /api/status (the status document); its answers
  (~120 MB/s) joined and searched in Python (``copy``, the default) or read into one buffer (``into``: the same
  requests, less of this 2-core machine's CPU taken from the gateway and the meters' process).

The well-behaved clients (bench/soak_probe.py, another host, 127.0.0.2, in a process of their own) ask one
cheap question every PROBE_PERIOD on each protocol (HTTP: ``GET /api/home``, what the web UI's Home page
polls, by default; ``--http-probe status`` fetches the whole status document, 65 KB, every PROBE_PERIOD
as this bench did first: no browser page asks that, and at 20 a second it was most of the quiet phases'
loop lag); their latencies in the quiet reference are each
protocol's unloaded figure. Printed per flood: the event-loop lag p99 (daemon/looplag.py, reset per
phase), the poll cycle against the reference (median per bus, the worse bus), the well-behaved client's
p99 on the flooded protocol against its unloaded p99 (and its failures), what the flood sent and got
answered. Targets: lag p99 <= 10 ms, cycle ratio <= 1.05, well-behaved p99 <= 2 x unloaded. With the
firewall on (its defaults: 2,000 requests/s and 1 Mbit/s per client, ban 30 s) the flooding address is
banned after a second or so, and the figures are mostly the ban's; off, they are the loop share's
(daemon/loopshare.py).
"""

import argparse
import asyncio
import collections
import cProfile
import multiprocessing
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import soak_probe, soak_wire as wire  # noqa: E402
from bench.common import free_port, percentile, reference_gateway  # noqa: E402
from daemon.security.rights import Caller  # noqa: E402
from protocols.bacnet import BacnetService, points  # noqa: E402
from protocols.modbus.tcp import ModbusTcpService  # noqa: E402
from protocols.snmp.agent import SnmpService  # noqa: E402
from webconfig.app import make_app  # noqa: E402
from webconfig.server import HttpServer  # noqa: E402

PROBE_PERIOD = 0.05
WINDOW = 64
PROTOCOLS = ("modbus", "snmp", "bacnet", "http")
FLOOD_HOST = "127.0.0.1"
HTTP_READER = "copy"            # the HTTP flooder's reader: "copy" (joins and searches its answers), "into"


# ------------------------------------------------------------------ the flooding client (its own process)

def _udp_flood(frames, port, stop, out):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FLOOD_HOST, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    sent = answered = 0
    while not stop.is_set():
        for n in range(WINDOW):
            try:
                sock.sendto(frames[(sent + n) % len(frames)], ("127.0.0.1", port))
            except (BlockingIOError, ConnectionRefusedError):
                pass
        sent += WINDOW
        end = time.monotonic() + 0.002
        while time.monotonic() < end:
            try:
                sock.recv(65535)
                answered += 1
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.0002)
    out.put((sent, answered))


def _modbus_answers(data):
    got, pos = 0, 0
    while len(data) - pos >= 6:
        length = int.from_bytes(data[pos + 4:pos + 6], "big")
        if len(data) - pos < 6 + length:
            break
        pos += 6 + length
        got += 1
    return got, data[pos:]


def _http_answers(data):
    got, pos = 0, 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].lower()
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(data) < end + 4 + length:
            break
        pos = end + 4 + length
        got += 1
    return got, data[pos:]


def flood(kind, ports, bacnet_target, stop, out):
    if kind == "snmp":
        frames = [wire.snmp_message(1, "publicV2", wire.GET, rid, [wire.SYS_UPTIME]) for rid in range(1, 257)]
        _udp_flood(frames, ports["snmp"], stop, out)
    elif kind == "bacnet":
        mac, ais = bacnet_target
        frames = [rpm_present_values(i, mac, ais) for i in range(256)]
        _udp_flood(frames, ports["bacnet"], stop, out)
    elif kind == "modbus":
        batch = b"".join(wire.read_holding(tid, 255, 0, 8) for tid in range(WINDOW))
        _tcp_flood_batches(batch, WINDOW, ports["modbus"], stop, out, _modbus_answers)
    elif kind == "http" and HTTP_READER == "into":
        _http_flood_into(ports["http"], stop, out)
    else:
        request = b"GET /api/status HTTP/1.1\r\nHost: gateway\r\n\r\n"
        _tcp_flood_batches(request * 16, 16, ports["http"], stop, out, _http_answers)


def _http_flood_into(port, stop, out, per_batch=16):
    """The HTTP flood with a cheaper reader (``--http-flood-reader into``): the same windows of 16 pipelined GET
    /api/status, never idle, but the answers are read into one preallocated buffer and their bodies skipped by
    their Content-Length instead of being joined and searched in Python (~120 MB/s of them): the flooder asks
    as fast as before and takes less of this 2-core machine's CPU from the gateway and the meters' process."""
    batch = b"GET /api/status HTTP/1.1\r\nHost: gateway\r\n\r\n" * per_batch
    buffer = bytearray(1 << 20)
    sent = answered = 0
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2.0, source_address=(FLOOD_HOST, 0))
        except OSError:
            time.sleep(0.1)
            continue
        carry, remaining = b"", 0
        try:
            while not stop.is_set():
                sock.sendall(batch)
                sent += per_batch
                want = answered + per_batch
                while answered < want and not stop.is_set():
                    n = sock.recv_into(buffer)
                    if not n:
                        raise OSError("closed")
                    pos = 0
                    while pos < n:
                        if remaining:
                            take = min(remaining, n - pos)
                            remaining -= take
                            pos += take
                            answered += remaining == 0
                            continue
                        head = carry + bytes(buffer[pos:min(n, pos + 4096)])
                        end = head.find(b"\r\n\r\n")
                        if end < 0:
                            carry, pos = head, n
                            continue
                        pos += end + 4 - len(carry)
                        carry = b""
                        for line in head[:end].lower().split(b"\r\n"):
                            if line.startswith(b"content-length:"):
                                remaining = int(line.split(b":", 1)[1])
                        answered += remaining == 0
        except OSError:
            time.sleep(0.05)
        sock.close()
    out.put((sent, answered))


def _tcp_flood_batches(batch, per_batch, port, stop, out, count_answer):
    """Send a batch of pipelined requests, read until they are answered (or 2 s), again: never idle."""
    sent = answered = 0
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2.0, source_address=(FLOOD_HOST, 0))
        except OSError:
            time.sleep(0.1)
            continue
        pending = b""
        try:
            while not stop.is_set():
                sock.sendall(batch)
                sent += per_batch
                want = answered + per_batch
                while answered < want and not stop.is_set():
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise OSError("closed")
                    got, pending = count_answer(pending + chunk)
                    answered += got
        except OSError:
            time.sleep(0.05)
        sock.close()
    out.put((sent, answered))


def rpm_present_values(invoke, mac, ais):
    body = b"".join(b"\x0c" + wire.object_id(wire.ANALOG_INPUT, a) + b"\x1e\x09\x55\x1f" for a in ais)
    return wire.bvlc(wire.npdu(bytes((0x00, 0x05, invoke & 0xFF, 0x0E)) + body, 1000, bytes((mac,))))


# ------------------------------------------------------------------ phases

async def phase(gateway, cycles, flooder=None):
    """Until every bus completed ``cycles`` whole cycles: their times, the loop lag, the probes' latencies."""
    pollers = gateway.pollers
    start = dict((b, p.cycles) for b, p in pollers.items())
    gateway.looplag.reset()
    while min(p.cycles - start[b] for b, p in pollers.items()) < cycles + 1:
        await asyncio.sleep(0.1)
    times = dict((b, list(p.cycle_times)[-(p.cycles - start[b] - 1):]) for b, p in pollers.items())
    return times, gateway.looplag.summary()


async def measure(cycles, firewall, meters="external", profile=None):
    ports = {"modbus": free_port(), "snmp": free_port(socket.SOCK_DGRAM), "bacnet": free_port(socket.SOCK_DGRAM)}
    settings = {"modbus.enabled": True, "modbus.port": ports["modbus"], "modbus.bind": "127.0.0.1",
                "snmp.enabled": True, "snmp.port": ports["snmp"], "snmp.bind": "127.0.0.1",
                "bacnet.enabled": True, "bacnet.port": ports["bacnet"], "bacnet.bind": "127.0.0.1",
                "firewall.enabled": firewall}
    soak_probe.PERIOD = PROBE_PERIOD
    results = {}
    async with reference_gateway(settings, [ModbusTcpService, SnmpService, BacnetService],
                                 external_meters=meters == "external") as gateway:
        web = HttpServer(make_app(gateway.door(Caller("web", "user"))), host="127.0.0.1", port=0)
        web.trace = collections.deque(maxlen=50000)     # every connection's stamps: a failed probe says where
        await web.start()
        stall_notes = []
        watcher = asyncio.get_running_loop().create_task(stall_watch(web, stall_notes))
        if profile:
            profile.enable()
        ports["http"] = web.port
        while not gateway.services[2].stack.settled():
            await asyncio.sleep(0.2)
        device = max(gateway.topology.devices, key=lambda d: len(points.device_points(d)))
        ais = [p.instance for p in points.device_points(device) if p.kind == points.ANALOG_INPUT][:20]
        context = multiprocessing.get_context("fork")
        built = (0, 0, 0, 0)
        for name in ("warm-up", "reference") + PROTOCOLS + ("reference after",):
            probes = soak_probe.Probes(ports)
            stop, out, proc = context.Event(), context.Queue(), None
            if name in PROTOCOLS:
                proc = context.Process(target=flood, args=(name, ports, (device.address, ais), stop, out),
                                       daemon=True)
            marks = [("probes", time.monotonic())]
            async with probes:          # not ``with``: its exit waits for the probes' last answers, from this loop
                await asyncio.sleep(0.5)
                if proc is not None:
                    marks.append(("flood forked", time.monotonic()))
                    proc.start()
                    marks.append(("forked", time.monotonic()))
                times, lag = await phase(gateway, cycles)
                stop.set()
                marks.append(("flood stopped", time.monotonic()))
                sent_answered = await asyncio.to_thread(out.get, True, 30) if proc is not None else None
                if proc is not None:
                    await asyncio.to_thread(proc.join, 10)
                marks.append(("probes told to stop", time.monotonic()))
            marks.append(("probes joined", time.monotonic()))
            results[name] = {"cycles": times, "lag": lag, "probes": probes.results, "flood": sent_answered,
                             "drops": drops(gateway), "http": dict(web.stats), "marks": marks,
                             "trace": list(web.trace) + [           # and those still open, stamped so
                                 (c.ip, c.stamps[1][1], c.stamps + [("still-open", time.monotonic())])
                                 for c in web._open if c.stamps]}
            web.trace.clear()
            document = getattr(web.app, "status_document", None)
            if document is not None:
                now = (document.built, document.reused, getattr(document, "slices", 0),
                       getattr(web._share, "quiet_turns", 0))
                results[name]["status_docs"] = tuple(b - a for a, b in zip(built, now, strict=True))
                built = now
            print("  %s: done" % name, file=sys.stderr, flush=True)
            await asyncio.sleep(1.0 if not firewall else 31.0)     # a ban of the flooding address runs out
        if profile:
            profile.disable()
        watcher.cancel()
        for note in stall_notes:
            print("stall seen by the gateway " + note)
        await web.stop()
    return results


SLOW_PROBE_S = 1.0          # a well-behaved HTTP request this slow (or failed) is printed with the server's stamps


def slow_http_probes(results):
    """Lines for each well-behaved HTTP request that failed or took SLOW_PROBE_S: the probe's stamps (connect,
    send, the answer's head, end) and the server's of the same connection (same client port, accepted within the
    request's time), all in ms from the request's start on the shared CLOCK_MONOTONIC."""
    lines = []
    for name, run in results.items():
        for port, started, connected, sent, head, done, error in run["probes"].get("http_trace", ()):
            if error is None and done - started < SLOW_PROBE_S:
                continue
            ms = lambda t, t0=started: "-" if t is None else "%.1f" % (1000 * (t - t0))     # noqa: E731
            lines.append("%s: probe port %d: connected %s, sent %s, head %s, end %s ms; %s; phase marks %s" % (
                name, port, ms(connected), ms(sent), ms(head), ms(done), error or "answered",
                ", ".join("%s %s" % (mark, ms(t)) for mark, t in run.get("marks", ()))))
            found = [stamps for ip, p, stamps in run["trace"]
                     if p == port and ip == soak_probe.CLIENT_HOST and started - 1 <= stamps[0][1] <= done + 1]
            for stamps in found:
                lines.append("    server: " + ", ".join("%s %s" % (e, ms(t)) for e, t in stamps if e != "port"))
            if not found:
                lines.append("    server: no connection from port %d accepted from its start to 1 s after its end"
                             % port)
            for age, text in dict(run["probes"].get("http_snapshots", ())).get(port, ()):
                lines.append("    kernel at %.2f s: %s" % (age, text.strip().replace("\n", "\n        ")))
    return lines


async def stall_watch(web, notes, period=0.5, after=1.0):
    """The gateway's side of a stalled connection, as it happens: every ``period``, a traced connection with
    nothing but its accept ``after`` s old, or the listening socket readable (a connection waiting in its accept
    queue) at two checks in a row, has the state of the tasks, the loop's selector and the kernel's epoll
    interest list noted in ``notes`` (at most a few)."""
    import select
    loop = asyncio.get_running_loop()
    readable_before = False
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        listener = web._listener
        if listener is None or listener.sock is None or len(notes) >= 6:
            continue
        fd = listener.sock.fileno()
        readable = bool(select.select([fd], [], [], 0)[0])
        stuck = [c for c in web._open if c.stamps and len(c.stamps) == 2 and now - c.stamps[0][1] > after]
        if not (stuck or (readable and readable_before)):
            readable_before = readable
            continue
        readable_before = False
        selector = loop._selector
        epfd = selector.fileno()
        try:
            with open("/proc/self/fdinfo/%d" % epfd) as f:
                watched = [line.split()[1] for line in f if line.startswith("tfd:")]
        except OSError:
            watched = ["?"]
        lines = ["at %.3f: listen fd %d readable %s; accept task %s" % (now, fd, readable, listener._task)]
        key = selector.get_map().get(fd)
        lines.append("  selector has listen fd: %s; kernel epoll watches it: %s" % (
            None if key is None else (key.events, key.data), str(fd) in watched))
        for conn in stuck:
            task = conn.task
            cfd = conn.writer.transport.get_extra_info("socket").fileno() if conn.writer else None
            lines.append("  conn %s stamps %s task %s waiter %s stack %s; fd %s in epoll %s" % (
                conn.ip, conn.stamps, task, getattr(task, "_fut_waiter", None),
                task.get_stack(limit=3) if task else None, cfd, str(cfd) in watched))
        lines.append("  loop ready %d scheduled %d; epoll watches %s" % (len(loop._ready), len(loop._scheduled),
                                                                        " ".join(watched)))
        notes.append("\n".join(lines))


def drops(gateway):
    """What the UDP services dropped themselves (over a client's share, banned) and read ahead, so far."""
    snmp, bacnet = gateway.services[1], gateway.services[2].stack.server.counters
    modbus = gateway.services[0].stats
    return {"modbus": dict((k, v) for k, v in modbus.items() if k != "frames"),
            "snmp_dropped": sum(snmp.dropped.values()), "snmp_read_ahead": getattr(snmp, "read_ahead", 0),
            "bacnet_dropped": bacnet["busy"] + bacnet["firewall_dropped"], "bacnet_read_ahead": bacnet["read_ahead"]}


def p99_ms(probe):
    return 1000 * percentile(probe["latencies"], 0.99) if probe["latencies"] else float("nan")


def report(results, firewall):
    quiet = ("reference", "reference after")
    reference = dict((b, [t for q in quiet for t in results[q]["cycles"][b]]) for b in results["reference"]["cycles"])
    # unloaded: both quiet phases' latencies together (the first phase alone, right after start, ran high)
    unloaded = dict((k, p99_ms({"latencies": [x for q in quiet for x in results[q]["probes"][k]["latencies"]]}))
                    for k in PROTOCOLS)
    print("firewall %s" % ("on (defaults: 2,000 requests/s, 1 Mbit/s per client, ban 30 s)" if firewall else "off"))
    print("%-16s %9s %9s %8s %22s %9s %16s" % ("flood", "lag p99", "lag max", "cycle", "well-behaved p99 ms",
                                              "failures", "flood sent/ans"))
    for name in quiet[:1] + PROTOCOLS + quiet[1:]:
        run = results[name]
        ratio = max(statistics.median(run["cycles"][b]) / statistics.median(reference[b]) for b in reference)
        if name in PROTOCOLS:
            probe = run["probes"][name]
            well = "%.2f / %.2f = %.2f" % (p99_ms(probe), unloaded[name], p99_ms(probe) / unloaded[name])
            failures = probe["failures"]
            sent = "%d/%d" % run["flood"]
        else:
            well = " ".join("%s %.2f" % (k[:2], p99_ms(run["probes"][k])) for k in PROTOCOLS)
            failures = sum(run["probes"][k]["failures"] for k in PROTOCOLS)
            sent = "-"
        print("%-16s %9.2f %9.2f %8.3f %22s %9d %16s" % (name, run["lag"]["p99_ms"], run["lag"]["max_ms"], ratio,
                                                        well, failures, sent))
    print("targets: lag p99 <= 10 ms; cycle ratio <= 1.05; well-behaved p99 <= 2 x its unloaded p99 (both quiet "
          "phases' latencies together)")
    if "http" in results and results["http"].get("status_docs") is not None:
        print("http flood: status documents built %d, reused %d, slices (turns) of the builds %d "
              "(webconfig/statusdoc.py); quiet clients' turns on the reserve %d (daemon/loopshare.py)"
              % results["http"]["status_docs"])
    if "http" in PROTOCOLS:                 # what the HTTP server counted (the well-behaved client's failures)
        previous = PROTOCOLS[PROTOCOLS.index("http") - 1] if PROTOCOLS.index("http") else "reference"
        before, after = results[previous]["http"], results["http"]["http"]
        print("http flood: server counts %s" % ", ".join(
            "%s %d" % (k, after[k] - before.get(k, 0)) for k in ("accepted", "requests", "rejected", "evicted",
                                                                   "bad_requests", "timeouts", "dropped",
                                                                   "share_waits_over_1s")))
    for line in slow_http_probes(results):
        print(line)
    if "modbus" in PROTOCOLS:               # why a Modbus connection ended (the well-behaved client's failures)
        previous = PROTOCOLS[PROTOCOLS.index("modbus") - 1] if PROTOCOLS.index("modbus") else "reference"
        before, after = results[previous]["drops"]["modbus"], results["modbus"]["drops"]["modbus"]
        print("modbus flood: connections %s" % ", ".join("%s %d" % (k, after[k] - before.get(k, 0)) for k in after))
    for kind in [k for k in ("snmp", "bacnet") if k in PROTOCOLS]:
        previous = PROTOCOLS[PROTOCOLS.index(kind) - 1] if PROTOCOLS.index(kind) else "reference"
        before, after = results[previous]["drops"], results[kind]["drops"]
        print("%s flood: dropped by the service %d, read ahead of asyncio %d; datagrams the kernel dropped: "
              "sent - answered - dropped = %d" % (
                  kind, after[kind + "_dropped"] - before[kind + "_dropped"],
                  after[kind + "_read_ahead"] - before[kind + "_read_ahead"],
                  results[kind]["flood"][0] - results[kind]["flood"][1]
                  - (after[kind + "_dropped"] - before[kind + "_dropped"])))


def drop_cost(runs=5, count=2000):
    """Microseconds per datagram the UDP services drop themselves: ``count`` queued from one host, read by
    udpsock.drain through the real intake (SNMP FrontTransport, BACnet GuardedDatagramServer), the host over
    its share of the loop (its queue full) or banned by the firewall; recvfrom alone for scale. Median of runs."""
    import collections
    import types
    from daemon.loopshare import LoopShare
    from protocols.bacnet.transport import GuardedDatagramServer
    from protocols.snmp.agent import FrontTransport
    from protocols.udpsock import bind_udp, drain

    def queued(sock, frame, receive):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.2", 0))
        for _ in range(count):
            sender.sendto(frame, sock.getsockname())
        sender.close()
        started = time.perf_counter()
        n = drain(sock, receive, count)
        return 1e6 * (time.perf_counter() - started) / max(1, n)

    def over(share, host, per_client, total):
        share._bucket(host, time.monotonic()).credit = -10.0
        while share.defer(host, lambda: None, per_client, total):
            pass

    async def once():
        sock, host = bind_udp("127.0.0.1", 0), "127.0.0.2"
        out = {"recvfrom": queued(sock, b"x" * 45, lambda data, addr: None)}
        server = GuardedDatagramServer(collections.Counter())
        server._sock = sock
        over(server.share, host, 8, 64)
        rp = wire.read_property(1, wire.DEVICE, 100, wire.PROP_OBJECT_NAME)
        out["bacnet over its share"] = queued(sock, rp, server._intake)
        server.admit = lambda ip, size: False
        out["bacnet banned"] = queued(sock, rp, server._intake)
        allowed = [True]
        service = types.SimpleNamespace(door=types.SimpleNamespace(admit=lambda ip, port, size: allowed[0]),
                                        port=0, dropped=collections.Counter(), share=LoopShare(), _sock=sock)
        front = FrontTransport.__new__(FrontTransport)
        front.service = service
        over(service.share, host, 64, 256)
        get = wire.snmp_message(1, "publicV2", wire.GET, 7, [wire.SYS_UPTIME])
        out["snmp over its share"] = queued(sock, get, front._intake)
        allowed[0] = False
        out["snmp banned"] = queued(sock, get, front._intake)
        server.share.clear()
        service.share.clear()
        sock.close()
        return out

    results = [asyncio.run(once()) for _ in range(runs)]
    print("per datagram dropped by the service (us, median of %d runs of %d): %s" % (runs, count, ", ".join(
        "%s %.2f" % (k, statistics.median(r[k] for r in results)) for k in results[0])))


def _home(port, timeout=10.0):
    """GET /api/home on a fresh connection, as the web UI's Home page polls it (the probe's HTTP question)."""
    return soak_probe.http_json(port, "/api/home", timeout)


def main():
    global PROTOCOLS, HTTP_READER
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=3, help="poll cycles per bus in each phase")
    parser.add_argument("--firewall", default="off,on", help="firewall settings to run, in order")
    parser.add_argument("--meters", choices=("external", "inprocess"), default="external",
                        help="the simulated meters in a process of their own, or threads of the gateway's")
    parser.add_argument("--http-probe", choices=("home", "status"), default="home",
                        help="the well-behaved HTTP client's question: GET /api/home or /api/status")
    parser.add_argument("--profile", help="cProfile the gateway's process over the phases, stats to this file")
    parser.add_argument("--floods", default=",".join(PROTOCOLS), help="the floods to run, in order (a subset)")
    parser.add_argument("--drop-cost", action="store_true", help="only measure what a dropped datagram costs")
    parser.add_argument("--http-flood-reader", choices=("copy", "into"), default="copy",
                        help="the HTTP flooder reads its answers joining them in Python (copy), or into one buffer")
    args = parser.parse_args()
    if args.drop_cost:
        drop_cost()
        return
    PROTOCOLS = tuple(p for p in args.floods.split(",") if p in PROTOCOLS)
    HTTP_READER = args.http_flood_reader        # the flooding process is forked: it reads this
    if args.http_probe == "home":           # the probe process is forked: it calls these
        soak_probe.http_status, soak_probe.summary = _home, lambda doc: None
    print("reference site (32 meters, both buses polling); one flooding client (127.0.0.1, its own process) per "
          "protocol in turn; well-behaved clients on 127.0.0.2 every %d ms; %d cycles per bus per phase"
          % (1000 * PROBE_PERIOD, args.cycles))
    print("meters: %s; well-behaved HTTP client: GET /api/%s"
          % ("a process of their own (tools.simbus)" if args.meters == "external" else
             "threads of the gateway's process", args.http_probe))
    profile = cProfile.Profile() if args.profile else None
    for setting in args.firewall.split(","):
        firewall = setting == "on"
        report(asyncio.run(measure(args.cycles, firewall, args.meters, profile)), firewall)
    if profile:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
