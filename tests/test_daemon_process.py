"""The daemon as a user runs it: ``python -m daemon`` in its own process."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import DEMO_TOPOLOGY, REPO, http_get, http_json, start_daemon, wait_until


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
    code, body = http_json(base + "/api/discovery", {"mode": "full"})
    assert code == 202 and body["state"] == "running"
    code, body = http_json(base + "/api/discovery", {"mode": "full"})
    assert code == 409                                     # one detection at a time
    assert http_json(base + "/api/discovery", {"mode": "turbo"})[0] == 400
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
                          cwd=REPO, capture_output=True, text=True, timeout=120)
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
