"""Lean on a Pi (issue 19, target 6): the real daemon's memory, CPU and start-up with every service on.

    .venv/bin/python -m bench.lean [--runs 5] [--settle 60] [--window 60] [--sessions 5]

The 32-meter reference site (board/topologies/reference32.json) is served by ``python -m tools.simbus --pty``
in a process of its own; the daemon is ``python -m daemon --board rpi --port digiware=/dev/pts/N --port
rs485=/dev/pts/M``, its own process, on a state dir whose topology is known (the 32 meters preset, as after a
detection). Every service is on, on 127.0.0.1 and free unprivileged ports: web (HTTP and HTTPS), Modbus TCP,
SNMP (v2c and the v3 user ``control``, SHA/AES), BACnet/IP, the FTP export schedule to a pyftpdlib server
(bench/export.py's FtpChild), MQTT publishing to a Mosquitto the bench starts, and ``--sessions`` logged-in web
sessions (profile User) each keeping a Monitor page's live long-poll (``GET /api/monitor/<address>``) open.

Measured:

* start-up: from the exec of the daemon to the first served value: a Modbus TCP read (pymodbus) of V1 of the
  A-40 at unit 30 in the normalized table that is non-zero and of quality good (polled, not absent). A first
  boot (identity and certificate made) is shown apart; then ``--runs`` restarts on the same state dir, median
  and spread. The reference: net-snmp's ``snmpd`` from its exec to its first answered GET.
* memory after ``--settle`` s of steady state: VmRSS (/proc/PID/status) and PSS (/proc/PID/smaps_rollup);
* CPU over ``--window`` s of steady state: utime+stime of /proc/PID/stat, as % of one core, for the daemon
  alone; the simulated meters' process and Mosquitto as context; ``snmpd`` (idle, the same window) as the
  reference of a C daemon's floor.

Each figure is printed with its ratio to its target (80 MB RSS, 5 % of one core, 3 s). ``--wrapper SCRIPT``
runs ``python SCRIPT <daemon arguments>`` in place of ``python -m daemon`` (a profiling wrapper);
``--py-spy FILE`` records the steady window with py-spy (the CPU figure is then not the daemon's alone).
"""

import argparse
import http.client
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import REFERENCE, REPO, SimbusProcess, free_port, load_reference, stop_process  # noqa: E402
from bench.export import PASSWORD as FTP_PASSWORD, USER as FTP_USER, FtpChild  # noqa: E402
from core import registry  # noqa: E402
from protocols.modbus import tables  # noqa: E402
from tools.mosquitto import Broker  # noqa: E402

TARGETS = {"rss_mb": 80.0, "cpu_pct": 5.0, "startup_s": 3.0}
UNIT, LOAD = 30, 1                               # an A-40 on the RS485 bus, its first load
V1 = tables.NORMALIZED_BASE + LOAD * registry.GW_LOAD_WINDOW + registry.get("v1")[registry.GW_OFFSET]
QUALITY = tables.NORMALIZED_BASE + LOAD * registry.GW_LOAD_WINDOW + tables.QUALITY_OFFSET
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6                                         # decimal MB: the stricter reading of "80 MB"


# ---------------------------------------------------------------- /proc

def cpu_seconds(pid, thread=None):
    """utime + stime of process ``pid`` (all its threads; or its thread ``thread`` alone), seconds."""
    path = "/proc/%d/stat" % pid if thread is None else "/proc/%d/task/%d/stat" % (pid, thread)
    with open(path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory(pid):
    """(VmRSS, Pss) of ``pid`` in bytes."""
    with open("/proc/%d/status" % pid) as handle:
        rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    with open("/proc/%d/smaps_rollup" % pid) as handle:
        pss = next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    return rss * 1024, pss * 1024


# ---------------------------------------------------------------- the peers the daemon talks to

class Mosquitto(Broker):
    """tools/mosquitto.py's broker on a free loopback port, anonymous, no persistence, no log; started."""

    def __init__(self, directory):
        super().__init__(os.path.join(directory, "mosquitto"), free_port(), ["allow_anonymous true", "log_dest none"],
                         log=False)
        self.start()


class Snmpd:
    """net-snmp's snmpd on a free loopback port, bench/snmp.py's minimal configuration (the reference)."""

    def __init__(self, directory):
        self.port = free_port(socket.SOCK_DGRAM)
        conf = os.path.join(directory, "snmpd.conf")
        with open(conf, "w", encoding="ascii") as handle:
            handle.write("agentAddress udp:127.0.0.1:%d\nrocommunity publicV2 127.0.0.1\n"
                         "createUser control SHA \"Control-2024\" AES \"Control-2024\"\nrouser control priv\n"
                         "sysName bench-snmpd\nsysLocation bench\nsysContact bench\n" % self.port)
        self.env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=directory)
        started = time.monotonic()
        self.proc = subprocess.Popen(["snmpd", "-f", "-Lo", "-C", "-c", conf], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while subprocess.run(["snmpget", "-v2c", "-c", "publicV2", "-r", "0", "-t", "0.05", "127.0.0.1:%d" % self.port,
                              "1.3.6.1.2.1.1.5.0"], env=self.env, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() - started > 20:
                raise RuntimeError("snmpd did not start")
        self.startup = time.monotonic() - started

    def close(self):
        stop_process(self.proc)


def wait_tcp(port, proc, guard=20.0):
    end = time.monotonic() + guard
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("%s did not listen on %d" % (proc.args[0], port)) from None
            time.sleep(0.05)


# ---------------------------------------------------------------- the daemon

def prepare_state(state):
    """A state dir whose topology is the reference site's 32 meters, as a detection leaves it."""
    from daemon.state.topology import Topology, devices_from_simulation
    os.makedirs(state, exist_ok=True)
    Topology(os.path.join(state, "topology.json"))._write(
        [d.as_dict() for d in devices_from_simulation(load_reference())])


def daemon_command(args, state, ttys, ports):
    """The daemon's command line: every service on, on loopback and the free ports of ``ports``."""
    settings = {
        "http.bind": "127.0.0.1", "https.redirect": "off", "modbus.bind": "127.0.0.1",
        "snmp.enabled": "true", "snmp.bind": "127.0.0.1", "bacnet.enabled": "true", "bacnet.bind": "127.0.0.1",
        "push.protocol": "ftp", "push.host": "127.0.0.1", "push.port": ports["ftp"], "push.user": FTP_USER,
        "push.password": FTP_PASSWORD, "push.folder": "exports",
        "push.schedule.measurements.mode": "every", "push.schedule.measurements.every_min": 10,
        "push.schedule.energy.mode": "every", "push.schedule.energy.every_min": 10,
        "mqtt.enabled": "true", "policy.cloud": "true", "mqtt.host": "127.0.0.1", "mqtt.port": ports["mqtt"],
        "mqtt.tls": "false",
    }
    settings.update(parse_set(args.set))
    head = [sys.executable, args.wrapper] if args.wrapper else [sys.executable, "-m", "daemon"]
    command = head + ["--board", "rpi", "--state-dir", state, "--log-level", "warning",
                      "--http-port", str(ports["http"]), "--https-port", str(ports["https"]),
                      "--modbus-port", str(ports["modbus"]), "--snmp-port", str(ports["snmp"]),
                      "--bacnet-port", str(ports["bacnet"])]
    for bus, tty in sorted(ttys.items()):
        command += ["--port", "%s=%s" % (bus, tty)]
    for key, value in sorted(settings.items()):
        command += ["--set", "%s=%s" % (key, value)]
    return command


def parse_set(items):
    """--set KEY=VALUE of the bench's command line: settings changed for a what-if run (e.g. mqtt.enabled=false)."""
    return dict(item.split("=", 1) for item in items)


def free_ports(ftp_port, mqtt_port):
    return {"http": free_port(), "https": free_port(), "modbus": free_port(),
            "snmp": free_port(socket.SOCK_DGRAM), "bacnet": free_port(socket.SOCK_DGRAM),
            "ftp": ftp_port, "mqtt": mqtt_port}


def first_value(port, proc, guard=60.0):
    """Seconds until a Modbus TCP read of V1 (unit 30, load 1) is non-zero with quality good; its value, V."""
    from pymodbus.client import ModbusTcpClient
    started = time.monotonic()
    client = None
    while time.monotonic() - started < guard:
        if proc.poll() is not None:
            raise RuntimeError("the daemon stopped (exit %s)" % proc.returncode)
        try:
            if client is None:
                client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
                if not client.connect():
                    client = None
                    raise OSError
            value = client.read_holding_registers(V1, count=2, device_id=UNIT)
            quality = client.read_holding_registers(QUALITY, count=1, device_id=UNIT)
            if not value.isError() and not quality.isError():
                volts = (value.registers[0] << 16 | value.registers[1]) / 100.0
                if volts and quality.registers[0] == tables.QUALITY_CODES["good"]:
                    client.close()
                    return volts
        except Exception:                    # refused before the server listens, cut at its start: try again
            if client is not None:
                client.close()
            client = None
        time.sleep(0.02)
    raise RuntimeError("no served value within %.0f s" % guard)


def start_daemon(args, state, ttys, ports, stderr):
    started = time.monotonic()
    proc = subprocess.Popen(daemon_command(args, state, ttys, ports), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=stderr)
    volts = first_value(ports["modbus"], proc)
    return proc, time.monotonic() - started, volts


# ---------------------------------------------------------------- 5 web sessions, each a Monitor page open

class Session(threading.Thread):
    """A User logged in through POST /api/login, then the Monitor page's long-poll loop on one keep-alive
    connection with the session's cookie (static/monitor.js)."""

    def __init__(self, port, address, stop):
        threading.Thread.__init__(self, daemon=True)
        self.port, self.address, self.stop = port, address, stop
        self.answers, self.errors, self.cookie = 0, 0, None

    def login(self):
        body = json.dumps({"profile": "user", "password": "", "language": "en"}).encode()
        request = urllib.request.Request("http://127.0.0.1:%d/api/login" % self.port, method="POST", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            cookie = response.headers.get("Set-Cookie") or ""
        self.cookie = cookie.split(";", 1)[0]
        if not self.cookie.startswith("m70_session="):
            raise RuntimeError("no session cookie in the login's answer")

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        since = None
        while not self.stop.is_set():
            path = "/api/monitor/%d?load=1%s" % (self.address, "" if since is None else "&since=%d" % since)
            try:
                connection.request("GET", path, headers={"Cookie": self.cookie})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                self.stop.wait(0.5)
                continue
            if response.status != 200:
                self.errors += 1
                self.stop.wait(2)
                continue
            since = json.loads(body)["version"]
            self.answers += 1
        connection.close()


# ---------------------------------------------------------------- one bench

def service_states(port, cookie):
    """{service: running} from /api/status (the bench checks that every service is really on)."""
    request = urllib.request.Request("http://127.0.0.1:%d/api/status" % port, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=30) as response:
        doc = json.loads(response.read())
    states = dict((name, bool(state.get("running"))) for name, state in doc["services"].items())
    states["mqtt"] = bool(doc["services"]["mqtt"].get("connected"))          # connected to the bench's broker
    states["push"] = any(due for key, due in doc["services"]["push"].items() if key.startswith("next."))  # scheduled
    return states


def steady(args, proc, others, port):
    """Sessions open, ``settle`` s, then memory and CPU over ``window`` s: a dict of figures."""
    stop = threading.Event()
    addresses = [d["address"] for bus in load_reference()["buses"].values() for d in bus["meters"]
                 if d.get("reference", d.get("product")) != "IO-10"][:args.sessions]
    sessions = [Session(port, address, stop) for address in addresses]
    for session in sessions:
        session.login()
        session.start()
    try:
        time.sleep(args.settle)
        services = service_states(port, sessions[0].cookie)
        spy = None
        if args.py_spy:
            tool = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
            spy = subprocess.Popen([tool, "record", "-p", str(proc.pid), "-d", str(int(args.window)), "-r", "50",
                                    "-f", "raw", "-o", args.py_spy], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        pids = dict(others, daemon=proc.pid)
        before = dict((name, cpu_seconds(pid)) for name, pid in pids.items())
        loop_before = cpu_seconds(proc.pid, proc.pid)            # the main thread: the event loop's
        answers = sum(s.answers for s in sessions)
        memory_start = memory(proc.pid)
        started = time.monotonic()
        time.sleep(args.window)
        elapsed = time.monotonic() - started
        cpu = dict((name, 100.0 * (cpu_seconds(pid) - before[name]) / elapsed) for name, pid in pids.items())
        cpu["daemon_loop"] = 100.0 * (cpu_seconds(proc.pid, proc.pid) - loop_before) / elapsed
        memory_end = memory(proc.pid)
        figures = {"cpu": cpu, "rss": max(memory_start[0], memory_end[0]), "pss": max(memory_start[1], memory_end[1]),
                   "rss_start": memory_start[0], "answers": sum(s.answers for s in sessions) - answers,
                   "errors": sum(s.errors for s in sessions), "sessions": len(sessions),
                   "peers_memory": dict((name, memory(pid)) for name, pid in others.items()), "services": services}
        if spy is not None:
            spy.wait()
        return figures
    finally:
        stop.set()


def run(args):
    work = tempfile.mkdtemp(prefix="bench-lean-")
    sim = mosquitto = snmpd = ftp = None
    procs = []
    try:
        sim = SimbusProcess(REFERENCE)
        mosquitto = Mosquitto(work)
        snmpd = Snmpd(work)
        ftp = FtpChild(os.path.join(work, "ftp")).__enter__()
        state = os.path.join(work, "state")
        prepare_state(state)
        stderr = open(args.stderr or os.path.join(work, "daemon.log"), "ab")
        out = {"startups": [], "snmpd_startup": snmpd.startup}
        for n in range(args.runs + 1):          # run 0: the first boot (identity, certificate made)
            proc, seconds, volts = start_daemon(args, state, sim.ttys, free_ports(ftp.port, mosquitto.port), stderr)
            procs.append(proc)
            if n == 0:
                out["first_boot"] = seconds
            else:
                out["startups"].append(seconds)
            out["volts"] = volts
            if n < args.runs:
                stop_process(proc, 30)
                procs.remove(proc)
        http_port = int(proc.args[proc.args.index("--http-port") + 1])
        out.update(steady(args, proc, {"simbus": sim.pid, "snmpd": snmpd.proc.pid, "mosquitto": mosquitto.proc.pid},
                          http_port))
        return out
    finally:
        for proc in procs:
            stop_process(proc, 30)
        for part in (sim, mosquitto, snmpd):
            if part is not None:
                part.close()
        if ftp is not None:
            ftp.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)


def report(r):
    startups = sorted(r["startups"])
    median = statistics.median(startups)
    cpu, snmpd_rss = r["cpu"], r["peers_memory"]["snmpd"][0]
    print("lean on a Pi: reference site (32 meters, 2 buses at 38400) from tools.simbus --pty, every service on, "
          "%d web sessions long-polling; load average %s" % (r["sessions"], " ".join("%.2f" % x for x in r["load"])))
    print("start-up to the first served value (Modbus TCP V1 of unit %d = %.1f V, quality good):" % (UNIT, r["volts"]))
    print("  first boot %.2f s; restarts: median %.2f s (spread %.2f..%.2f, %d runs) = %.2f x target %.0f s;"
          " snmpd exec to first GET %.3f s" % (r["first_boot"], median, startups[0], startups[-1], len(startups),
                                               median / TARGETS["startup_s"], TARGETS["startup_s"], r["snmpd_startup"]))
    print("memory after %.0f s steady: VmRSS %.1f MB = %.2f x target %.0f MB; PSS %.1f MB; snmpd VmRSS %.1f MB"
          " (ours %.1f x), mosquitto %.1f MB" % (
              r["settle"], r["rss"] / MB, r["rss"] / MB / TARGETS["rss_mb"], TARGETS["rss_mb"], r["pss"] / MB,
              snmpd_rss / MB, r["rss"] / max(1, snmpd_rss), r["peers_memory"]["mosquitto"][0] / MB))
    print("CPU over %.0f s steady, %% of one core: daemon %.2f %% = %.2f x target %.0f %% (its loop thread %.2f %%, the"
          " other threads %.2f %%); simbus %.2f %%, mosquitto %.2f %%, snmpd (idle) %.2f %%" % (
              r["window"], cpu["daemon"], cpu["daemon"] / TARGETS["cpu_pct"], TARGETS["cpu_pct"], cpu["daemon_loop"],
              cpu["daemon"] - cpu["daemon_loop"], cpu["simbus"], cpu["mosquitto"], cpu["snmpd"]))
    print("services running: %s" % ", ".join("%s %s" % (name, "on" if on else "OFF")
                                             for name, on in sorted(r["services"].items())))
    print("monitor long-poll answers in the window: %d (%d errors)" % (r["answers"], r["errors"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="restarts timed (after one first boot)")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds of steady state before measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of the CPU window")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--wrapper", help="python SCRIPT in place of python -m daemon (profiling)")
    parser.add_argument("--py-spy", help="record the window with py-spy into this file (raw)")
    parser.add_argument("--stderr", help="append the daemon's stderr to this file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a daemon setting changed for this run (what-if: a service's share)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)      # its "connection refused" while the daemon starts
    result = run(args)
    result.update(settle=args.settle, window=args.window, load=os.getloadavg())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result)


if __name__ == "__main__":
    main()
