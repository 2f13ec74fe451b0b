"""The well-behaved clients of the soak bench: one light client per protocol, in a process of their own.

Each asks one cheap question every PERIOD s on its protocol (HTTP GET
/api/status, a Modbus TCP read of the gateway table, an SNMPv2c GET built by
hand, a BACnet ReadProperty built by hand) and records how long the answer
took. A question not answered within its protocol's timeout counts as a
failure and enters the latencies at that timeout, so a p99 shows it. They run
in their own process so the attacker's work in the bench process (and its GIL)
does not delay them: their latency is the gateway's.
The HTTP client's status documents are kept too: they carry the loop-lag
summary and the bus cycle figures the bench reads.
"""

import asyncio
import http.client
import json
import multiprocessing
import random
import socket
import struct
import subprocess
import threading
import time

from bench import soak_wire as wire

PERIOD = 0.2
ERRORS = ("timeouts", "crc_errors", "frame_errors")
TIMEOUTS = {"http": 10.0, "modbus": 5.0, "snmp": 2.0, "bacnet": 2.0}
# The well-behaved clients are another host than the attacker (127.0.0.1), as on a LAN: the per-address caps
# are there so that one host's connections cannot lock the others out (Linux routes all of 127/8 to lo).
CLIENT_HOST = "127.0.0.2"


def http_status(port, timeout=10.0):
    """GET /api/status on a fresh connection: the decoded document (an HTTP error raises)."""
    return http_json(port, "/api/status", timeout)


# Per HTTP request of this process: (local port, started, connected, sent, answer's head read, done, error or
# None), CLOCK_MONOTONIC seconds (the gateway's clock too, so its own stamps of the connection compare): a request
# that fails says where it waited. A few hundred tuples a phase.
HTTP_TRACE = []
# A request still unanswered after these seconds has the kernel's view of it noted (``ss`` of its connection and
# of the server's listening socket, the TCP counters of listen queues and SYN cookies): (port, [(age, text)])
SNAPSHOT_AT = (2.0, 9.0)
HTTP_SNAPSHOTS = []
_pending = {}           # the request in flight: port, server port, started, snapshots taken


def _kernel_view(port, server_port):
    """What the kernel says of the client's connection from ``port`` and of the server's listening socket."""
    try:
        conns = subprocess.run(["ss", "-tanoi", "( sport = :%d or dport = :%d )" % (port, port)],
                               capture_output=True, text=True, timeout=2).stdout
        listen = subprocess.run(["ss", "-ltnp", "( sport = :%d )" % server_port], capture_output=True, text=True,
                                timeout=2).stdout
        with open("/proc/net/netstat") as f:
            names, values = f.readline().split(), f.readline().split()
        counts = " ".join("%s=%s" % kv for kv in zip(names, values, strict=True) if kv[0] in (
            "ListenOverflows", "ListenDrops", "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "TWRecycled"))
        return conns + listen + counts
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return "ss failed: %s" % exc


def _watch():
    """Snapshot the kernel's view of a request in flight once it is SNAPSHOT_AT old (a thread of the probe)."""
    while True:
        time.sleep(0.25)
        pending = dict(_pending)
        if "started" not in pending:
            continue
        age = time.monotonic() - pending["started"]
        due = [at for at in SNAPSHOT_AT if at <= age and at not in pending["taken"]]
        if due:
            pending["taken"].update(due)
            pending["snapshots"].append((round(age, 2), _kernel_view(pending["port"], pending["server_port"])))


def http_json(port, path, timeout=10.0):
    """GET ``path`` from CLIENT_HOST on a fresh connection: the decoded JSON answer (an HTTP error raises)."""
    if not _pending.get("watching"):
        _pending["watching"] = True
        threading.Thread(target=_watch, daemon=True).start()
    stamps, snapshots = [0, time.monotonic(), None, None, None, None, None], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(CLIENT_HOST, 0))
    try:
        conn.connect()
        stamps[0], stamps[2] = conn.sock.getsockname()[1], time.monotonic()
        _pending.update(port=stamps[0], server_port=port, started=stamps[1], taken=set(), snapshots=snapshots)
        conn.request("GET", path, headers={"Connection": "close"})
        stamps[3] = time.monotonic()
        response = conn.getresponse()
        stamps[4] = time.monotonic()
        body = response.read()
        stamps[5] = time.monotonic()
        if response.status != 200:
            raise OSError("HTTP %d" % response.status)
        return json.loads(body)
    except Exception as exc:
        stamps[5], stamps[6] = time.monotonic(), "%s: %s" % (type(exc).__name__, exc)
        raise
    finally:
        conn.close()
        HTTP_TRACE.append(tuple(stamps))
        for key in ("port", "server_port", "started", "taken", "snapshots"):
            _pending.pop(key, None)
        if snapshots:
            HTTP_SNAPSHOTS.append((stamps[0], snapshots))


def summary(doc):
    """What the bench keeps of a status document: loop lag, each bus's cycle figures, and per device its
    timeouts and all its communication errors (timeouts, bad CRCs, bad frames: the simulated meters never cause
    one, so each is false, and each counts toward the "Modbus slave timeout" alarm)."""
    return {"at": time.monotonic(), "loop_lag": doc["loop_lag"],
            "buses": dict((name, {"cycles": bus.get("cycles", 0), "cycle_ms": bus.get("cycle_ms"),
                                  "mean_cycle_ms": bus.get("mean_cycle_ms")})
                          for name, bus in doc["buses"].items()),
            "timeouts": dict(("%s/%d" % (d["bus"], d["address"]), d["counters"].get("timeouts", 0))
                             for d in doc["devices"]),
            "errors": dict(("%s/%d" % (d["bus"], d["address"]), sum(d["counters"].get(k, 0) for k in ERRORS))
                           for d in doc["devices"]),
            "time": doc["gateway"].get("time")}


class _Modbus:
    def __init__(self, port):
        self.port, self.sock, self.tid = port, None, 0

    def ask(self):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUTS["modbus"],
                                                 source_address=(CLIENT_HOST, 0))
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(wire.read_holding(self.tid, 255, 0, 8))
        answer = b""
        while len(answer) < 7 or len(answer) < 6 + struct.unpack(">H", answer[4:6])[0]:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed")
            answer += chunk
        if struct.unpack(">H", answer[:2])[0] != self.tid or answer[7] != 3:
            raise OSError("bad answer %r" % answer[:12])

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Datagram:
    def __init__(self, port, kind):
        self.address, self.kind = ("127.0.0.1", port), kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CLIENT_HOST, 0))
        self.sock.settimeout(TIMEOUTS[kind])
        self.n = random.randrange(1, 1000)

    def ask(self):
        self.n += 1
        if self.kind == "snmp":
            rid = self.n & 0x7FFFFFFF
            self.sock.sendto(wire.snmp_message(1, "publicV2", wire.GET, rid, [wire.SYS_UPTIME]), self.address)
            while wire.snmp_response_id(self.sock.recv(65535)) != rid:
                pass
        else:
            invoke = self.n & 0xFF
            self.sock.sendto(wire.read_property(invoke, wire.DEVICE, 100, wire.PROP_OBJECT_NAME), self.address)
            while wire.bacnet_answer(self.sock.recv(65535)) != ("complex", invoke):
                pass

    def close(self):
        self.sock.close()


def _loop(kind, ports, stop, out):
    latencies, failures, statuses = [], 0, []
    client = _Modbus(ports["modbus"]) if kind == "modbus" else (
        _Datagram(ports[kind], kind) if kind in ("snmp", "bacnet") else None)
    while not stop.is_set():
        started = time.monotonic()
        try:
            if kind == "http":
                statuses.append(summary(http_status(ports["http"], TIMEOUTS["http"])))
            else:
                client.ask()
            latencies.append(time.monotonic() - started)
        except (OSError, ValueError, KeyError):
            failures += 1
            latencies.append(max(time.monotonic() - started, TIMEOUTS[kind]))
            if kind == "modbus":
                client.close()
        stop.wait(PERIOD)
    if client is not None:
        client.close()
    out[kind] = {"latencies": latencies, "failures": failures}
    if kind == "http":
        out["statuses"] = statuses
        out["http_trace"] = list(HTTP_TRACE)
        out["http_snapshots"] = list(HTTP_SNAPSHOTS)


def _main(ports, stop, queue):
    out, threads = {}, []
    for kind in ("http", "modbus", "snmp", "bacnet"):
        threads.append(threading.Thread(target=_loop, args=(kind, ports, stop, out), daemon=True))
        threads[-1].start()
    for thread in threads:
        thread.join()
    queue.put(out)


class Probes:
    """``with Probes(ports) as probes:`` … ``probes.results`` once the block is left; ``async with`` when the
    gateway under test runs on the caller's own event loop (bench/fairness.py)."""

    def __init__(self, ports):
        self.ports = ports
        self.results = None
        context = multiprocessing.get_context("fork")
        self._stop, self._queue = context.Event(), context.Queue()
        self._proc = context.Process(target=_main, args=(ports, self._stop, self._queue), daemon=True)

    def __enter__(self):
        self._proc.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.results = self._queue.get(timeout=60)
        self._proc.join(timeout=30)
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        """``__exit__`` waited for in a thread. The probes answer only once their requests in flight are: a gateway
        on this loop must go on serving them. Waited for in the loop itself, it was blocked until they timed out
        (the well-behaved HTTP client's 10 s failures, a Modbus one's 5 s: bench/RESULTS.md)."""
        return await asyncio.to_thread(self.__exit__, *exc)
