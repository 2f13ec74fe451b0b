"""Exports survive a SIGKILL of the gateway in the middle of a server outage (issue 16, SPEC §5 store and forward).

A child process runs a ManualClock gateway with simulated meters and the real export service, pushing to an FTP
port where nothing listens; it steps the clock ten minutes at a time and prints every file it finds in the spool.
It is SIGKILLed at a random instant once it has spooled a few files, started again later on the same state
directory (the store, the cursors, the schedule and the spool carry over; its clock goes on from a later time),
killed again; after each kill the spool, reopened as the gateway opens it, still holds every file printed, in
order, and nothing half-written. Then the gateway runs in this process with a pyftpdlib server up on that port,
more than two simulated hours after the first failed delivery: every file spooled arrives once, in the order
spooled; across all the files received no data row appears twice and every stored load-curve and history point
the exports covered is in one of them (read back with the annex parser of tests/test_export_formats.py); alarm 6,
raised in the child, is cleared once the files are delivered.
"""

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

from conftest import free_tcp_port, running_gateway, topology_with
from push_servers import PASSWORD, USER, FtpServer
from test_export_formats import utc
from test_export_service import CURVE_PERIODS, DIGIWARE, FILE_NAME, OVERRIDES, T, ems_points, polled, step, stored_points

from board.base import ManualClock
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Geometry
from outbound.export.collect import KINDS
from outbound.export.service import ExportService
from outbound.export.spool import Spool

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
SPOOL_DIR = "export-spool"          # outbound/export/spool.py directory_of: the spool in the state directory
ROUNDS = 2                          # child runs, each ended by a SIGKILL
SPOOLED_BEFORE_KILL = 3             # files a run spools (prints) before the kill may come
OUTAGE_S = 2 * 3600
GUARD_S = 60                        # a child that prints nothing for this long is a failure, not a wait


def push_settings(port):
    """FTP to ``port`` (nothing listens there until the last run), EMS with a named site, every 30 min."""
    return {"push.protocol": "ftp", "push.host": "127.0.0.1", "push.port": port, "push.user": USER,
            "push.password": PASSWORD, "push.folder": "m70/exports", "push.format": "ems",
            "push.site_name": "socomec", "push.server_name": "GW1",
            "push.schedule.load_curves.mode": "every", "push.schedule.load_curves.every_min": 30,
            "push.schedule.measurements.mode": "every", "push.schedule.measurements.every_min": 30,
            "push.schedule.energy.mode": "every", "push.schedule.energy.every_min": 30}


def gateway(state, clock):
    """The gateway of tests/test_export_service.py (same meters, overrides, store and curve periods)."""
    return running_gateway(state, topology_with(DIGIWARE, (), baud=115200), OVERRIDES, clock,
                           services=[ExportService], storage_geometry=Geometry(96, 2000, segments=4),
                           curve_overrides=CURVE_PERIODS)


async def child_main(state, start, port, first):
    """The child: steps forever (until killed), printing each spool entry once and the state after each step."""
    clock = ManualClock(start)
    async with gateway(state, clock) as gw:
        service = gw.services[0]
        push = gw.door(Caller("push"))
        if first:
            await gw.topology.replace(devices_from_simulation(topology_with(DIGIWARE, ())))
            await gw.door(Caller("web", "cyber")).set_settings(push_settings(port))
        await polled(gw)
        await gw.curves.cycle()
        printed = set()

        def report(what):
            for entry in service.spool.entries():           # the background cycle's files too, in spool order
                if entry.id not in printed:
                    printed.add(entry.id)
                    print("spooled", entry.id, entry.name, flush=True)
            print(what, clock.time(), int(push.alarm_active("delivery") is not None), service.spool.count(),
                  flush=True)
        report("started")
        while True:
            await step(gw, clock, service)
            await service.sender.deliver()                   # refused: alarm 6, the files stay
            report("step")


def whole_lines(text):
    """The lines of a killed child's output that were written whole (the kill may cut the last)."""
    return [line.split() for line in text.split("\n")[:-1] if line.strip()]


def run_child(script, state, start, port, first, known, rng, errors):
    """One run of the child, SIGKILLed at a random instant once it spooled a few files not in ``known`` (the spool
    ids printed by the runs before); its whole lines."""
    child = subprocess.Popen([sys.executable, str(script), str(state), repr(start), str(port), str(int(first))],
                             stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
    lines, spooled = [], 0
    guard = threading.Timer(GUARD_S, child.kill)            # a silent child ends the wait (readline: EOF)
    guard.start()
    try:
        while spooled < SPOOLED_BEFORE_KILL or lines[-1][0] != "step":
            line = child.stdout.readline()
            assert line.endswith("\n"), f"the child stopped: see {errors.name}"
            lines.append(line.split())
            spooled += lines[-1][0] == "spooled" and int(lines[-1][1]) not in known
        time.sleep(rng.uniform(0.0, 1.5))                   # somewhere in a step: polling, export, spool, delivery
    finally:
        guard.cancel()
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    return lines + whole_lines(rest)


def reopened_spool(state):
    """[(id, name)] of the spool as the gateway opens it after the kill (what an interrupted put left, cleared),
    and the entries it found damaged (a data file without its meta, or of another size)."""
    damaged = []

    async def reopen():
        spool = Spool(os.path.join(str(state), SPOOL_DIR), 10 ** 9, on_drop=lambda e, why: damaged.append(e.name))
        await spool.open()
        return [(entry.id, entry.name) for entry in spool.entries()]
    return asyncio.run(reopen()), damaged


CHILD = """
import asyncio, sys
sys.path[:0] = [%(tests)r, %(repo)r]
import test_export_restart
state, start, port, first = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
asyncio.run(test_export_restart.child_main(state, start, port, first))
"""


def test_a_sigkill_in_the_middle_of_an_outage_loses_nothing_and_the_server_gets_everything_once(tmp_path):
    state = tmp_path / "state"
    port = free_tcp_port()                               # nothing listens here until the last run
    script = tmp_path / "child.py"
    script.write_text(CHILD % {"tests": TESTS, "repo": REPO})
    rng = random.Random()
    spooled = {}                                         # spool id -> name, as the children printed them
    steps = []                                           # (clock, alarm 6 active, spool count) of every step
    start, first_kill = T + 1, None
    for round_ in range(ROUNDS):
        with open(tmp_path / f"child-{round_}.err", "w") as errors:
            lines = run_child(script, state, start, port, round_ == 0, set(spooled), rng, errors)
        for words in lines:
            if words[0] == "spooled":
                assert spooled.setdefault(int(words[1]), words[2]) == words[2]
            elif words[0] == "step":
                steps.append((float(words[1]), words[2] == "1", int(words[3])))
        kept, damaged = reopened_spool(state)
        # every file printed is still there, in the order spooled, none damaged; a file the kill's step spooled
        # before it was printed may follow them
        assert [(i, n) for i, n in kept if i in spooled] == sorted(spooled.items())
        assert all(i > max(spooled) for i, _n in kept if i not in spooled)
        assert damaged == []
        first_kill = first_kill or steps[-1][0]          # (the last step printed before it)
        start = steps[-1][0] + 1200                      # later than anything the killed step reached
    assert any(alarm for _t, alarm, _n in steps), steps
    first_failure = min(t for t, alarm, _n in steps if alarm)
    assert all(alarm for _t, alarm, count in steps if count), "alarm 6 stays while files wait"
    kept = [name for _i, name in reopened_spool(state)[0]]

    # the gateway again, in this process, with the server up two hours after the first failed delivery
    ftp = FtpServer(tmp_path / "ftp", port=port).start()
    out = {}

    async def last_run():
        clock = ManualClock(max(start, first_failure + OUTAGE_S))
        out["start"] = clock.time()
        async with gateway(state, clock) as gw:
            service = gw.services[0]
            push = gw.door(Caller("push"))
            await polled(gw)
            await gw.curves.cycle()
            out["first_delivery"] = await service.sender.deliver()
            out["arrived_first"] = ftp.names()
            made = []
            for _ in range(4):
                made.extend(f.name for f in await step(gw, clock, service))
                await service.sender.deliver()
            out["made"] = made
            out["alarm"] = push.alarm_active("delivery")
            out["spool"] = service.spool.count()
            out["failures"] = service.sender.failures
            out["cursors"] = {(KINDS[data_type], device.uid): service.collector.cursor(data_type, device.uid)
                              for data_type in ("load_curves", "measurements") for device in gw.topology.devices
                              if service.collector.cursor(data_type, device.uid) is not None}
            out["stored"] = stored_points(gw, ("load_curve", "history"), T, clock.time())
            out["alarm_records"] = [(r["event"], r["ts"], r.get("detail")) for r in gw.alarms.log.records()
                                    if (r.get("alarm"), r.get("source")) == (6, "push:delivery")]
    try:
        asyncio.run(last_run())
    finally:
        ftp.stop()

    received = ftp.names()
    assert len(received) == len(set(received)), "a file arrived twice"
    assert received[:len(kept)] == kept                     # what waited went first, in the order spooled
    assert out["arrived_first"][:len(kept)] == kept
    assert set(out["made"]) <= set(received[len(kept):]) and out["made"]
    assert out["alarm"] is None and out["spool"] == 0 and out["failures"] == 0
    # the event log: alarm 6 raised by the killed gateway, carried over, cleared by this run's delivery
    events = out["alarm_records"]
    assert events[0][0] == "raised" and events[0][1] < out["start"]
    assert events[-1][0] == "cleared" and events[-1][1] >= out["start"], events
    assert [e for e in events if e[0] == "cleared"] == [events[-1]] and "restart" not in events[-1][2], events
    assert all(FILE_NAME.match(name) for name in received), received

    points, duplicates = ems_points(ftp.files)
    assert duplicates == []
    # every stored load-curve and history point before its device's export cursor (the end of what its last
    # export covered) is in some file: at each (kind, load, start), a row for every series the store holds
    expected = collections.Counter()
    for kind, netid, load, _key, t in out["stored"]:
        assert (kind, netid) in out["cursors"], f"stored points of {kind} {netid} never exported"
        if t < out["cursors"][(kind, netid)]:
            expected[(kind, str(load), t)] += 1
    rows = collections.Counter()
    for kind, unique_key, date in points:
        if kind != "consumption":
            site, server, _device_id, load, _ana, _data_id = unique_key.split("|")
            assert (site, server) == ("socomec", "GW1")
            rows[(kind, load, utc(date))] += 1
    assert [(point, n, rows[point]) for point, n in sorted(expected.items()) if rows[point] < n] == []
    # not vacuous: points of the first child's time and of this last run's are among them
    assert min(t for _k, _l, t in expected) < first_kill and max(t for _k, _l, t in expected) >= out["start"]
    assert {kind for kind, _l, _t in expected} == {"load_curve", "history"}
