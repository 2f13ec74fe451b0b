"""The daemon as a user runs it: ``python -m daemon`` in its own process."""

import collections
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import (DEMO_TOPOLOGY, REPO, http_get, http_json, mbpoll, parse_mbpoll, start_daemon, wait_until,
                      STRONG_PASSWORDS, web_login)
from pymodbus.client import ModbusTcpClient

from core import catalogue


def held_ptys(pid):
    """The pseudo-terminals process ``pid`` holds open: Counter of ("master" | "slave", pts number) → fds.

    A master is an fd on /dev/ptmx (its pts number is the ``tty-index`` of its
    fdinfo), a slave an fd on /dev/pts/<n>. Only the process's own fds count:
    other programs opening pseudo-terminals meanwhile change nothing here.
    """
    held = collections.Counter()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
            if target == "/dev/ptmx" or target.startswith("/dev/pts/ptmx"):
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as info:
                    index = [int(line.split()[1]) for line in info if line.startswith("tty-index:")]
                assert index, "no tty-index in /proc/%d/fdinfo/%s" % (pid, fd)
                held["master", index[0]] += 1
            elif target.startswith("/dev/pts/"):
                held["slave", int(target[len("/dev/pts/"):].split()[0])] += 1      # "N (deleted)" too
        except FileNotFoundError:         # an fd closed while we looked
            continue
    return held


def pty_identity(number):
    """(inode, ctime) of /dev/pts/<number>, or None once it is gone: a pty another program opens later
    under the same number is a new node (a later ctime), not ours left behind."""
    try:
        st = os.stat("/dev/pts/%d" % number)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns


@pytest.fixture
def daemon(tmp_path):
    proc = start_daemon(tmp_path / "state", "--board", "sim", "--topology", DEMO_TOPOLOGY,
                        "--set", "discovery.last_address=24")
    base = proc.base                                 # the port the daemon bound and announced
    try:
        wait_until(lambda: http_get(base + "/api/status")[0] == 200, guard=30)
        yield proc, base, held_ptys(proc.pid)        # the buses are open once the API answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_shows_live_meters_and_stops_cleanly_on_sigterm(daemon, tmp_path):
    proc, base, ptys_at_start = daemon
    code, first = http_json(base + "/api/status")
    assert code == 200 and first["gateway"]["board"] == "sim"
    assert first["devices"] == [] and first["discovery"]["state"] == "idle"      # a fresh state dir: nothing yet
    assert http_json(base + "/api/discovery", {"mode": "full"})[0] == 401     # starting one needs a profile
    admin = web_login(base, "admin")                       # the forced change of the default password included
    code, body = admin.post("/api/discovery", {"mode": "full"})
    assert code == 202 and body["state"] == "running"
    code, body = admin.post("/api/discovery", {"mode": "full"})
    assert code == 409                                     # one detection at a time
    assert admin.post("/api/discovery", {"mode": "turbo"})[0] == 400
    wait_until(lambda: http_json(base + "/api/discovery")[1]["state"] == "done", guard=90)

    def all_good():
        doc = http_json(base + "/api/status")[1]
        devices = doc["devices"]
        readings = [v for d in devices for load in d["values"].values() for v in load.values()]
        return len(devices) == 8 and all(d["values"] for d in devices) and \
            all(v["quality"] == "good" and v["value"] is not None for v in readings) and doc
    doc = wait_until(all_good, guard=30)
    a40 = next(d for d in doc["devices"] if d["address"] == 20)
    assert a40["reference"] == "A-40" and a40["netid"] == "" and a40["bus"] == "rs485"
    assert 200 < a40["values"]["1"]["v1"]["value"] < 260 and a40["values"]["1"]["v1"]["unit"] == "V"
    assert a40["counters"]["answers"] > 0
    assert doc["gateway"]["board"] == "sim" and len(doc["gateway"]["netid"]) == 6
    assert doc["loop_lag"]["samples"] > 0
    assert doc["services"]["modbus"]["running"] is True and doc["services"]["modbus"]["port"] > 0   # bound to 0
    assert doc["services"]["rtu_slave"]["running"] is False          # RS485 port is a master bus here
    code, _ct, csv_text = http_get(base + "/api/files/modbus-register-map.csv")
    assert code == 200 and csv_text.startswith(b"table,unit_id,register_hex")
    assert doc["services"]["snmp"]["running"] is False                # off by default (SPEC §10)
    storage = doc["storage"]
    assert storage["available"] and storage["write_errors"] == 0 and storage["size_bytes"] > 0
    assert storage["recovery"]["clean_shutdown"]                      # a fresh store
    code, _ct, mib = http_get(base + "/api/files/SOCOMEC-GATEWAY-MIB.txt")
    assert code == 200 and b"DEFINITIONS ::= BEGIN" in mib

    # the command-line way to run a detection against a running gateway
    tool = subprocess.run([sys.executable, "-m", "tools.detect", "--url", base, "--mode", "fast"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, M70_PASSWORD=STRONG_PASSWORDS["admin"]))
    assert tool.returncode == 0, tool.stderr
    # FAST after FULL: the COUNTIS (FULL only) is kept, found as it answers (issue 13: a detection does not delete)
    assert "8 devices found (0 new)" in tool.stdout and "A-40" in tool.stdout and "E23" in tool.stdout

    # the page a newcomer opens, with local assets only
    code, ctype, html = http_get(base + "/")
    assert code == 200 and ctype.startswith("text/html") and b"status.js" in html
    assert http_get(base + "/static/status.js")[0] == 200

    # the daemon's own pseudo-terminals: one per simulated bus (the meters' master end and the port the
    # gateway opens), the same fds as at start (none leaked during the run)
    ptys = held_ptys(proc.pid)
    assert ptys == ptys_at_start
    ports = [bus["port"] for bus in doc["buses"].values()]
    assert len(ports) == 2 and all(port.startswith("/dev/pts/") for port in ports), ports
    numbers = set(number for _kind, number in ptys)
    assert numbers == set(int(port[len("/dev/pts/"):]) for port in ports)
    assert all(ptys["master", n] >= 1 and ptys["slave", n] >= 1 for n in numbers), ptys
    ours = dict((n, pty_identity(n)) for n in numbers)
    assert None not in ours.values()

    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=10) == 0
    stop_s = time.monotonic() - started
    print("daemon stopped %.2f s after SIGTERM" % stop_s)
    # no pseudo-terminal left behind: each of the daemon's is gone (or its number is another program's new one)
    left = dict((n, ident) for n, ident in ours.items() if pty_identity(n) == ident)
    assert left == {}, "pseudo-terminals left behind: %s" % sorted("/dev/pts/%d" % n for n in left)
    # storage flushed: the topology and the event log are there for the next start
    topo = json.loads((tmp_path / "state" / "topology.json").read_text())
    assert len(topo["devices"]) == 8 and not any(d["not_found"] for d in topo["devices"].values())   # FAST kept E23
    assert (tmp_path / "state" / "events.ring").stat().st_size > 0
    # the store keeps its preallocated size through a whole run
    size_after = (tmp_path / "state" / "tsdb" / "store.dat").stat().st_size
    assert size_after == storage["size_bytes"]                        # fixed size, never grown


def test_bad_command_lines_are_refused_clearly(tmp_path):
    for args, message in ((["--set", "bus.digiware.baud=fast"], "expected an integer"),
                          (["--set", "no.such=1"], "unknown setting"),
                          (["--http-port", "70000"], "outside")):
        proc = subprocess.run([sys.executable, "-m", "daemon", "--board", "sim", "--state-dir", str(tmp_path)] + args,
                              cwd=REPO, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def banner_match(proc, pattern, guard=30.0):
    """The first match of ``pattern`` in the daemon's start-up banner: what start_daemon read of it, then more."""
    fd, end = proc.stdout.fileno(), time.monotonic() + guard
    while True:
        found = re.search(pattern, proc.banner)
        if found:
            return found
        left = end - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError("no %r in the start-up banner:\n%s" % (pattern, proc.banner))
        proc.banner += chunk.decode("utf-8", "replace")


def tcp_read(port, unit, register, count):
    """Holding registers read over Modbus TCP by pymodbus, an independent client: words, or the exception code."""
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
    assert client.connect()
    try:
        answer = client.read_holding_registers(register, count=count, device_id=unit)
        return answer.exception_code if answer.isError() else list(answer.registers)
    finally:
        client.close()


def test_a_newcomer_reaches_the_rtu_slave_of_the_demo_with_mbpoll(tmp_path):
    """What the README says to do: start the demo with the RS485 port as slave, read the device an RTU master
    opens from the banner, run mbpoll on it; the gateway answers what it serves over Modbus TCP."""
    proc = start_daemon(tmp_path / "state", "--board", "sim", "--topology", DEMO_TOPOLOGY,
                        "--set", "bus.rs485.mode=slave", "--set", "policy.modbus_slave=true",
                        "--set", "discovery.last_address=24", "--discover", "fast")
    try:
        found = banner_match(proc, r"rtu_slave\s*: unit (\d+) at 38400 baud 8N1; an RTU master opens (/dev/\S+) ")
        unit, peer = int(found.group(1)), found.group(2)
        assert re.search(r"try it\s*: mbpoll -m rtu -b 38400 -P none -a %d .* %s\n" % (unit, re.escape(peer)),
                         banner_match(proc, r"try it.*\n").group(0))

        def detected():
            doc = http_json(proc.base + "/api/status")[1]
            return doc["discovery"]["state"] == "done" and all(d["status"] == "ok" for d in doc["devices"]) and doc
        doc = wait_until(detected, guard=90)
        rs485 = doc["buses"]["rs485"]
        assert rs485["mode"] == "slave" and rs485["slave_port"] == peer and rs485["port"] != peer
        assert doc["services"]["rtu_slave"]["running"] is True
        # the demo's RS485 meters left the line the gateway answers on: only the Digiware bus was detected
        assert [d["address"] for d in doc["devices"]] == [4, 5, 11, 13, 14, 15]
        assert set(m["bus"] for m in http_json(proc.base + "/api/sim/meters")[1]["meters"]) == {"digiware"}
        tcp_port, tcp_unit = doc["services"]["modbus"]["port"], doc["gateway"]["modbus_address"]

        rtu = ("-m", "rtu", "-b", 38400, "-P", "none", "-o", 5)
        # the gateway's own table (its identification), then an I-35's identification through the gateway
        for rtu_unit, same_on_tcp, register, count in ((unit, tcp_unit, 0, 16), (4, 4, catalogue.IDENT_BASE, 66)):
            out = mbpoll(*rtu, "-a", rtu_unit, "-r", register, "-c", count, peer)
            assert out.returncode == 0, out.stdout + out.stderr
            got = parse_mbpoll(out.stdout)
            words = [got[register + i] & 0xFFFF for i in range(count)]
            assert words == tcp_read(tcp_port, same_on_tcp, register, count) and any(words)
        # an address the I-35 does not have: exception 02, framed so that mbpoll decodes it, as over TCP
        out = mbpoll(*rtu, "-a", 4, "-r", 0x0100, "-c", 2, peer)
        assert out.returncode != 0 and "Illegal data address" in out.stderr, out.stdout + out.stderr
        assert tcp_read(tcp_port, 4, 0x0100, 2) == 2
        # the demo's A-40 (address 20 on the RS485 line of the topology file) does not answer there any more
        out = mbpoll("-m", "rtu", "-b", 38400, "-P", "none", "-o", 1, "-a", 20, "-r", catalogue.IDENT_BASE, "-c", 4,
                     peer)
        assert out.returncode != 0 and "timed out" in out.stderr, out.stdout + out.stderr
        slave = http_json(proc.base + "/api/status")[1]["services"]["rtu_slave"]
        assert slave["answers"] == 3 and slave["ignored"] >= 1 and slave["bad_crc"] == 0, slave
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_topology_file_with_an_impossible_fault_is_refused_at_start(tmp_path):
    topology = json.loads(open(DEMO_TOPOLOGY).read())
    topology["buses"]["rs485"]["meters"][0]["extra_delay_ms"] = float("nan")      # json writes NaN, and reads it
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(topology))
    proc = subprocess.run([sys.executable, "-m", "daemon", "--board", "sim", "--topology", str(path), "--state-dir",
                           str(tmp_path / "state"), "--http-port", "0", "--https-port", "0", "--modbus-port", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "extra_delay_ms must be a number within 0..10000 ms" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_daemon_starts_with_the_mqtt_publisher_on_and_says_where_it_publishes(tmp_path):
    """A client service without a port of its own (the MQTT publisher) has its banner line; the daemon serves
    while its broker is unreachable (nothing listens on the port: the publisher retries, the web answers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]          # free once closed: nothing listens there
    proc = start_daemon(tmp_path / "state", "--board", "sim", "--topology", DEMO_TOPOLOGY,
                        "--set", "mqtt.enabled=true", "--set", "policy.cloud=true",
                        "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % closed_port)
    try:
        assert banner_match(proc, r"mqtt\s*: to 127\.0\.0\.1:(\d+)\n").group(1) == str(closed_port)
        status = wait_until(lambda: http_get(proc.base + "/api/status")[0] == 200, guard=30)
        assert status and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
