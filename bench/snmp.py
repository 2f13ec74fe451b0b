"""SNMP agent benchmark: GET rate, GET latency and full-tree walks, side by side with net-snmp's snmpd.

    .venv/bin/python bench/snmp.py [--seconds 4] [--runs 1] [--in-process-meters] [--profile] [--no-loop-share]

The gateway runs the 32-meter reference site (board/topologies/reference32.json)
with its buses polling; its meters answer from a ``tools.simbus`` process of
their own (as hardware does on the Pi; ``--in-process-meters``: from threads
of the gateway's process, sharing its interpreter). Its agent listens on a
free loopback port. In the
same run the bench starts net-snmp's ``snmpd`` on another free loopback port
with a minimal configuration written here (its own MIB-II tree) and measures
both with the same tools:

* GET rate: a separate load-client process (this file, ``--client``) sends
  SNMPv2c GETs of one existing instance each, keeping a window of requests
  in flight; our OIDs are random metrology instances, snmpd's are its cheap
  system-group scalars (the reference at its fastest);
* GET latency: the same client in lock-step (one request in flight), p50/p99;
* SNMPv3 authPriv (SHA/AES) GETs: the same client as the bench's v3 user
  (engine discovery, then each GET signed and encrypted, each answer's digest
  checked and decrypted; snmpd checks the client independently), window 4
  and lock-step;
* full-tree walks: ``snmpbulkwalk`` of ``.1`` (v2c) and with SNMPv3 authPriv,
  as wall time and instances per second (the trees differ in size), the
  median of ``WALKS`` walks per agent, alternated between the two.

``--no-loop-share`` serves every datagram at once (a diagnosis: how much
of the tail is the per-client budget of loop time). ``--profile``
(LoopClock) adds where the slow v3 GETs of the lock-step run spent their
time: in our code (the intake's own time for that datagram) or waiting
for the loop (the callbacks that ran meanwhile), and the loop share's
deferrals (daemon/loopshare.py). ``--runs N`` repeats the whole measure and
prints the median and spread of the headline ratios, with the load average.

Targets: GET rate >= 0.3 x snmpd's, p99 GET latency <= 10 ms (v2c); v3 authPriv
walk >= 0.7 x snmpd's instances/s and v3 GET p99 <= 1 ms (issue 19).
"""

import argparse
import asyncio
import bisect
import collections
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import free_port, percentile, reference_gateway  # noqa: E402
from protocols.snmp import ber  # noqa: E402

V3 = ["-v3", "-u", "control", "-l", "authPriv", "-a", "SHA", "-A", "Control-2024", "-x", "AES", "-X", "Control-2024"]
WALKS = 5                  # full-tree walks per agent and version; the median is reported
SYSTEM_SCALARS = [(1, 3, 6, 1, 2, 1, 1, n, 0) for n in (1, 2, 3, 4, 5, 6)]


# ---------------------------------------------------------------- load client (separate process)

class V2c:
    """GET messages and their answers, SNMPv2c."""

    def __init__(self, sock):
        pass

    def request(self, request_id, oid):
        return ber.encode_request(1, b"publicV2", ber.GET, request_id, [oid])

    def answer(self, data):
        return ber.decode_response(data)


class V3Client:
    """GET messages and their answers as the bench's v3 user (authPriv, SHA/AES): engine discovery first, then
    every request signed and encrypted, every answer's digest checked and decrypted. The same client talks to
    snmpd, which checks it independently."""

    def __init__(self, sock):
        from protocols.snmp import usm, v3gate
        self.gate = v3gate
        self.sock = sock
        self.salt = 0
        sock.send(self._message(1, 0x04, b"", 0, 0, b"", ber.tlv(ber.SEQUENCE, b"\x04\x00\x04\x00"
                  + ber.tlv(ber.GET, ber.encode_integer(1) + b"\x02\x01\x00\x02\x01\x00\x30\x00"))))
        head = v3gate.parse_header(sock.recv(65535))         # the report: engine ID, boots, time
        self.engine_id, self.boots = head.engine_id, head.boots
        self.time_origin = time.monotonic() - head.time
        user, auth, password, priv, _priv_password = "control", "SHA", "Control-2024", "AES", "Control-2024"
        self.user = usm.localised_user(user.encode(), auth, password, priv, password, self.engine_id)

    def _message(self, msg_id, flags, engine_id, boots, engine_time, user, data, mac=0, salt=b""):
        usm_params = ber.tlv(ber.SEQUENCE, ber.tlv(4, engine_id) + ber.encode_integer(boots)
                             + ber.encode_integer(engine_time) + ber.tlv(4, user) + ber.tlv(4, bytes(mac))
                             + ber.tlv(4, salt))
        glob = ber.tlv(ber.SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(65507)
                       + ber.tlv(4, bytes((flags,))) + ber.encode_integer(3))
        return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + glob + ber.tlv(4, usm_params) + data)

    def request(self, request_id, oid):
        user = self.user
        now = int(time.monotonic() - self.time_origin)
        self.salt += 1
        salt = self.salt.to_bytes(8, "big")
        pdu = ber.tlv(ber.GET, ber.encode_integer(request_id) + b"\x02\x01\x00\x02\x01\x00"
                      + ber.tlv(ber.SEQUENCE, ber.encode_varbind(ber.encode_oid(oid), b"\x05\x00")))
        scoped = ber.tlv(ber.SEQUENCE, ber.tlv(4, self.engine_id) + b"\x04\x00" + pdu)
        data = ber.tlv(4, user.crypt(scoped, self.boots, now, salt, True))
        message = self._message(request_id, 0x07, self.engine_id, self.boots, now, user.name, data,
                                user.mac_length, salt)
        head = self.gate.parse_header(message)
        start, end = head.auth
        return message[:start] + user.sign(message) + message[end:]

    def answer(self, data):
        head = self.gate.parse_header(data)
        start, end = head.auth
        assert self.user.sign(data[:start] + bytes(end - start) + data[end:]) == data[start:end], "bad digest"
        plain = self.user.crypt(data[head.data[0]:head.data[1]], head.boots, head.time, head.salt, False)
        _t, pos, _e = ber.read_tlv(plain, 0, len(plain))
        _t, _s, pos = ber.read_tlv(plain, pos, len(plain))          # contextEngineID
        _t, _s, pos = ber.read_tlv(plain, pos, len(plain))          # contextName
        return ber.decode_response(ber.tlv(ber.SEQUENCE, b"\x02\x01\x01\x04\x00" + plain[pos:]))


def client(port, oids, seconds, window, version="v2c"):
    """GETs for ``seconds`` with ``window`` requests in flight: rate and latencies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2.0)
    codec = (V3Client if version == "v3" else V2c)(sock)
    rng = random.Random(1)
    pending = {}
    latencies = []
    timeline = []
    request_id = 0
    lost = 0

    def send():
        nonlocal request_id
        request_id = (request_id + 1) & 0x7FFFFFFF
        message = codec.request(request_id, tuple(rng.choice(oids)))
        pending[request_id] = time.perf_counter()          # before the send: the answer may come before it returns
        sock.send(message)

    start = time.perf_counter()
    end = start + seconds
    for _ in range(window):
        send()
    done = 0
    while True:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            lost += len(pending)
            pending.clear()
            for _ in range(window):
                send()
            continue
        now = time.perf_counter()
        answer = codec.answer(data)
        sent = pending.pop(answer[0], None)
        if sent is None:
            continue
        assert answer[1] == 0 and answer[3][0][1] not in (ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE), answer
        latencies.append(now - sent)
        timeline.append((sent, now - sent))
        done += 1
        if now >= end:
            if not pending:
                break
            continue
        send()
    elapsed = time.perf_counter() - start
    p99 = percentile(latencies, 0.99)
    return {"gets": done, "rate": done / elapsed, "p50_ms": 1000 * percentile(latencies, 0.50),
            "p99_ms": 1000 * p99, "lost": lost,
            "slow": [t for t in timeline if t[1] >= p99][:500]}     # (sent, latency): perf_counter is system-wide


async def run_client(port, oids, seconds, window, processes=1, version="v2c"):
    """Rate (summed) and latencies (worst) of ``processes`` load clients run together."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(oids, handle)
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "--client", str(port), handle.name, str(seconds), str(window),
        version, stdout=asyncio.subprocess.PIPE) for _ in range(processes)]
    outs = [await proc.communicate() for proc in procs]
    os.unlink(handle.name)
    if any(proc.returncode != 0 for proc in procs):
        raise RuntimeError("load client failed")
    results = [json.loads(out) for out, _err in outs]
    merged = dict(results[0])
    for key in ("gets", "rate", "lost"):
        merged[key] = sum(r[key] for r in results)
    for key in ("p50_ms", "p99_ms"):
        merged[key] = max(r[key] for r in results)
    return merged


async def walk(port, credentials, root=".1"):
    """(seconds, instances) of an snmpbulkwalk."""
    env = dict(os.environ, MIBS="")
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "snmpbulkwalk", "-On", "-Oq", "-t", "5", *credentials, "127.0.0.1:%d" % port, root, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError("snmpbulkwalk failed: %s" % err.decode())
    lines = [x for x in out.decode().splitlines() if x.startswith(".") and "No more variables" not in x]
    return elapsed, len(lines)


# ---------------------------------------------------------------- where the slow GETs' time went (--profile)

class LoopClock:
    """Times every loop callback (asyncio's Handle._run) and every datagram the intake handles, on the
    perf_counter clock the load client also uses, so a slow request's time splits into waiting for the loop
    (the callbacks that ran between its send and its handling) and our own code (the intake's time)."""

    SLOW_S = 0.0002                     # callbacks longer than this are kept, with what they were

    def __init__(self, intake):
        self.intake = intake
        self.callbacks = []             # (start, seconds, what)
        self.handled = []               # (start, seconds) per datagram
        self._run = asyncio.events.Handle._run
        self._handle = intake.handle

    def __enter__(self):
        original, callbacks, slow = self._run, self.callbacks, self.SLOW_S
        clock = time.perf_counter

        def timed_run(handle):
            start = clock()
            original(handle)
            took = clock() - start
            if took > slow:
                callbacks.append((start, took, _what(handle)))
        asyncio.events.Handle._run = timed_run
        handle, handled = self._handle, self.handled

        def timed_handle(datagram):
            start = clock()
            answer = handle(datagram)
            handled.append((start, clock() - start))
            return answer
        self.intake.handle = timed_handle
        return self

    def __exit__(self, *exc):
        asyncio.events.Handle._run = self._run
        del self.intake.handle

    def explain(self, slow):
        """For each slow request (sent, latency): (latency, wait before the intake, intake time, callbacks that
        ran meanwhile)."""
        handled = sorted(self.handled)
        starts = [h[0] for h in handled]
        rows = []
        for sent, latency in slow:
            i = bisect.bisect_left(starts, sent)
            if i == len(handled) or handled[i][0] > sent + latency:
                continue
            start, took = handled[i]
            # those running after the send that ended before our intake began (not the one that ran it)
            during = [c for c in self.callbacks if c[0] + c[1] > sent and c[0] + c[1] <= start]
            rows.append((latency, start - sent, took, during))
        return rows


def _what(handle):
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return "task %s (%s)" % (task.get_name(), getattr(coro, "__qualname__", coro))
    return getattr(callback, "__qualname__", repr(callback))


def profile_summary(rows, handled):
    """Text lines: the slow requests' time split, and the callbacks most often found running meanwhile."""
    if not rows:
        return ["profile: no slow request matched"]
    own = sorted(h[1] for h in handled)
    lines = ["profile of the %d slowest v3 lock-step GETs (>= p99): latency p50 %.3f ms; of it, before our intake "
             "ran p50 %.3f ms, the intake itself p50 %.3f ms (all %d datagrams: p50 %.3f, p99 %.3f ms)"
             % (len(rows), 1000 * statistics.median(r[0] for r in rows), 1000 * statistics.median(r[1] for r in rows),
                1000 * statistics.median(r[2] for r in rows), len(own), 1000 * percentile(own, 0.5),
                1000 * percentile(own, 0.99))]
    blamed = collections.Counter()
    spent = collections.Counter()
    for _latency, _wait, _took, during in rows:
        for _start, took, what in during:
            blamed[what] += 1
            spent[what] += took
    alone = sum(1 for r in rows if not r[3])
    lines.append("  %d of them with no callback > %.1f ms running meanwhile; callbacks found running meanwhile:"
                 % (alone, 1000 * LoopClock.SLOW_S))
    for what, count in blamed.most_common(8):
        lines.append("  %4d x %6.3f ms avg  %s" % (count, 1000 * spent[what] / count, what[:90]))
    return lines


# ---------------------------------------------------------------- the two agents

async def start_snmpd(workdir):
    port = free_port(socket.SOCK_DGRAM)
    conf = os.path.join(workdir, "snmpd.conf")
    with open(conf, "w", encoding="ascii") as handle:
        handle.write("agentAddress udp:127.0.0.1:%d\nrocommunity publicV2 127.0.0.1\n"
                     "createUser control SHA \"Control-2024\" AES \"Control-2024\"\nrouser control priv\n"
                     "sysName bench-snmpd\nsysLocation bench\nsysContact bench\n" % port)
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=workdir)
    proc = await asyncio.create_subprocess_exec("snmpd", "-f", "-Lo", "-C", "-c", conf, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(100):
        probe = await asyncio.create_subprocess_exec(
            "snmpget", "-v2c", "-c", "publicV2", "-r", "0", "-t", "0.2", "127.0.0.1:%d" % port, "1.3.6.1.2.1.1.5.0",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await probe.wait() == 0:
            return proc, port
        await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("snmpd did not start")


def _deferred(service):
    status = service.share.status()
    return status["turns_deferred"] + service.dropped["over_share"]


async def measure(seconds, external_meters=True, profile=False, loop_share=True):
    from protocols.snmp import mibdef
    from protocols.snmp.agent import SnmpService

    workdir = tempfile.mkdtemp(prefix="bench-snmp-")
    port = free_port(socket.SOCK_DGRAM)
    # The firewall off: snmpd has none, and its per-client limit (2000 requests/s) would ban the load client.
    settings = {"snmp.enabled": True, "snmp.port": port, "snmp.bind": "127.0.0.1", "firewall.enabled": False}
    async with reference_gateway(settings, [SnmpService], external_meters=external_meters) as gateway:
        service = gateway.services[0]
        if not loop_share:                 # diagnosis only: every datagram served at once, as snmpd does
            service.share.allows = lambda client, now=None: True
        snmpd = None
        try:
            service.index.refresh()
            ours = [list(oid) for segment in service.index.segments for oid in segment.oids
                    if oid[:len(mibdef.METROLOGY)] == mibdef.METROLOGY]
            snmpd, snmpd_port = await start_snmpd(workdir)
            results = {"instances": service.index.size(), "metrology": len(ours)}
            gateway.looplag.reset()
            await asyncio.sleep(seconds)
            results["idle_lag"] = gateway.looplag.summary()
            scalars = [list(o) for o in SYSTEM_SCALARS]
            results["snmpd_rate"] = await run_client(snmpd_port, scalars, seconds, 4)
            gateway.looplag.reset()
            results["ours_rate"] = await run_client(port, ours, seconds, 4)
            results["ours_lag"] = gateway.looplag.summary()
            results["ours_rate_system"] = await run_client(port, scalars, seconds, 4)
            results["snmpd_lat"] = await run_client(snmpd_port, scalars, seconds, 1)
            results["ours_lat"] = await run_client(port, ours, seconds, 1)
            results["snmpd_v3_rate"] = await run_client(snmpd_port, scalars, seconds, 4, version="v3")
            before = _deferred(service)
            results["ours_v3_rate"] = await run_client(port, ours, seconds, 4, version="v3")
            results["snmpd_v3_lat"] = await run_client(snmpd_port, scalars, seconds, 1, version="v3")
            middle = _deferred(service)
            clock = LoopClock(service.intake) if profile else contextlib.nullcontext()
            with clock:
                results["ours_v3_lat"] = await run_client(port, ours, seconds, 1, version="v3")
            results["share_deferred"] = (middle - before, _deferred(service) - middle)
            if profile:
                results["profile"] = profile_summary(clock.explain(results["ours_v3_lat"]["slow"]), clock.handled)
                busy = sum(h[1] for h in clock.handled) / max(1e-9, clock.handled[-1][0] - clock.handled[0][0])
                results["profile"].append("  the intake's share of the lock-step client's time: %.2f (the loop share "
                                          "defers a client past 0.4 of the loop: the intake plus the socket path)"
                                          % busy)
            for key, credentials in (("walk", ["-v2c", "-c", "publicV2"]), ("walk_v3", V3)):
                runs = {"snmpd": [], "ours": []}
                for _ in range(WALKS):             # alternated, so a burst of load hits both sides alike
                    runs["snmpd"].append(await walk(snmpd_port, credentials))
                    runs["ours"].append(await walk(port, credentials))
                for side, done in runs.items():    # the median walk (by instances per second)
                    results["%s_%s" % (side, key)] = sorted(done, key=lambda w: w[1] / w[0])[len(done) // 2]
            results["polling"] = dict((bus, p.cycles) for bus, p in gateway.pollers.items())
            return results
        finally:
            if snmpd is not None:
                snmpd.terminate()
                await snmpd.wait()
            shutil.rmtree(workdir, ignore_errors=True)          # snmpd's configuration and persistent files


def report(r, seconds):
    print("SNMP agent vs net-snmp snmpd, reference site (32 meters polling), %d s per GET run, loopback" % seconds)
    print("tree: %d instances served (%d metrology)" % (r["instances"], r["metrology"]))
    print("%-34s %12s %12s %8s" % ("measure", "ours", "snmpd", "ratio"))

    def line(name, ours, theirs, fmt="%12.0f", invert=False):
        ratio = (theirs / ours) if invert else (ours / theirs)
        print(("%-34s " + fmt + " " + fmt + " %8.2f") % (name, ours, theirs, ratio))

    line("GET/s, window 4 (metrology)", r["ours_rate"]["rate"], r["snmpd_rate"]["rate"])
    line("GET/s, window 4 (system scalars)", r["ours_rate_system"]["rate"], r["snmpd_rate"]["rate"])
    line("GET/s, lock-step", r["ours_lat"]["rate"], r["snmpd_lat"]["rate"])
    line("GET p50 latency ms, lock-step", r["ours_lat"]["p50_ms"], r["snmpd_lat"]["p50_ms"], "%12.3f", True)
    line("GET p99 latency ms, lock-step", r["ours_lat"]["p99_ms"], r["snmpd_lat"]["p99_ms"], "%12.3f", True)
    line("GET p99 latency ms, window 4", r["ours_rate"]["p99_ms"], r["snmpd_rate"]["p99_ms"], "%12.3f", True)
    line("v3 authPriv GET/s, window 4", r["ours_v3_rate"]["rate"], r["snmpd_v3_rate"]["rate"])
    line("v3 authPriv GET/s, lock-step", r["ours_v3_lat"]["rate"], r["snmpd_v3_lat"]["rate"])
    line("v3 GET p50 latency ms, lock-step", r["ours_v3_lat"]["p50_ms"], r["snmpd_v3_lat"]["p50_ms"], "%12.3f", True)
    line("v3 GET p99 latency ms, lock-step", r["ours_v3_lat"]["p99_ms"], r["snmpd_v3_lat"]["p99_ms"], "%12.3f", True)
    line("v3 GET p99 latency ms, window 4", r["ours_v3_rate"]["p99_ms"], r["snmpd_v3_rate"]["p99_ms"], "%12.3f",
         True)
    for label, key in (("v2c", "walk"), ("v3 authPriv", "walk_v3")):
        ours, theirs = r["ours_" + key], r["snmpd_" + key]
        print("%-34s %9.2f s  %9.2f s   (%d vs %d instances)" % ("snmpbulkwalk .1, %s, median" % label, ours[0],
                                                                theirs[0], ours[1], theirs[1]))
        line("  instances/s, %s" % label, ours[1] / ours[0], theirs[1] / theirs[0])
    rate_ratio = r["ours_rate"]["rate"] / r["snmpd_rate"]["rate"]
    print("GET rate ratio %.2f (target >= 0.3): %s" % (rate_ratio, "met" if rate_ratio >= 0.3 else "NOT met"))
    p99 = max(r["ours_lat"]["p99_ms"], r["ours_rate"]["p99_ms"])
    print("p99 GET latency %.2f ms (target <= 10 ms): %s" % (p99, "met" if p99 <= 10 else "NOT met"))
    walk_ratio = (r["ours_walk_v3"][1] / r["ours_walk_v3"][0]) / (r["snmpd_walk_v3"][1] / r["snmpd_walk_v3"][0])
    print("v3 authPriv walk instances/s ratio %.2f (target >= 0.7): %s"
          % (walk_ratio, "met" if walk_ratio >= 0.7 else "NOT met"))
    p99 = max(r["ours_v3_lat"]["p99_ms"], r["ours_v3_rate"]["p99_ms"])
    print("p99 v3 authPriv GET latency %.2f ms (target <= 1 ms): %s" % (p99, "met" if p99 <= 1 else "NOT met"))
    for label, lag in (("polling only", r["idle_lag"]), ("polling + GET load", r["ours_lag"])):
        print("event-loop lag, %s: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d samples"
              % (label, lag["p50_ms"], lag["p99_ms"], lag["max_ms"], lag["samples"]))
    print("lost requests %d; poll cycles during the run %s" % (r["ours_rate"]["lost"], r["polling"]))
    print("v3 datagrams kept waiting or dropped by the loop share (daemon/loopshare.py): window 4 %d, lock-step %d"
          % r["share_deferred"])
    for line_ in r.get("profile", ()):
        print(line_)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, path, seconds, window = int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
        with open(path, encoding="utf-8") as handle:
            oids = json.load(handle)
        print(json.dumps(client(port, oids, seconds, window, sys.argv[6])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--in-process-meters", action="store_true",
                        help="the simulated meters' threads in the gateway's process (default: a simbus process)")
    parser.add_argument("--profile", action="store_true", help="where the slow v3 lock-step GETs' time went")
    parser.add_argument("--no-loop-share", action="store_true",
                        help="diagnosis: our agent serves every datagram at once (no client budget of loop time)")
    args = parser.parse_args()
    print("meters: %s; loop share: %s" % ("threads of the gateway's process" if args.in_process_meters
                                          else "a tools.simbus process of their own",
                                          "off (diagnosis)" if args.no_loop_share else "on (daemon/loopshare.py)"))
    rows = []
    for run in range(args.runs):
        load = os.getloadavg()
        print("\n=== run %d of %d, load average %.2f %.2f %.2f" % ((run + 1, args.runs) + load))
        r = asyncio.run(measure(args.seconds, not args.in_process_meters, args.profile, not args.no_loop_share))
        report(r, args.seconds)
        rows.append((load[0], headline(r)))
    if args.runs > 1:
        summary(rows)


def headline(r):
    """The issue-19 target figures of one run."""
    rate = lambda w: w[1] / w[0]  # noqa: E731
    return {"v3 walk inst/s ratio": rate(r["ours_walk_v3"]) / rate(r["snmpd_walk_v3"]),
            "v3 GET p99 ms lock-step": r["ours_v3_lat"]["p99_ms"], "snmpd v3 GET p99 ms lock-step":
            r["snmpd_v3_lat"]["p99_ms"], "v3 GET p50 ms lock-step": r["ours_v3_lat"]["p50_ms"],
            "v3 GET p99 ms window 4": r["ours_v3_rate"]["p99_ms"], "snmpd v3 GET p99 ms window 4":
            r["snmpd_v3_rate"]["p99_ms"], "v2c walk inst/s ratio": rate(r["ours_walk"]) / rate(r["snmpd_walk"]),
            "v2c GET/s ratio window 4": r["ours_rate"]["rate"] / r["snmpd_rate"]["rate"],
            "v2c GET p99 ms lock-step": r["ours_lat"]["p99_ms"]}


def summary(rows):
    print("\n=== %d runs, load average (1 min) at their start %s" % (len(rows), " ".join("%.2f" % r[0] for r in rows)))
    print("%-32s %9s %9s %9s   per run" % ("figure", "median", "min", "max"))
    for key in rows[0][1]:
        values = [r[1][key] for r in rows]
        print("%-32s %9.3f %9.3f %9.3f   %s" % (key, statistics.median(values), min(values), max(values),
                                              " ".join("%.3f" % v for v in values)))


if __name__ == "__main__":
    main()
