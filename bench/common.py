"""Helpers shared by the benchmarks: the reference site, running a gateway on it."""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

from board.sim import SimBoard, load_topology_file
from core import modbus_rtu as rtu
from daemon.gateway import Gateway
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "board", "topologies", "reference32.json")


def load_reference():
    return load_topology_file(REFERENCE)


def board_with_external_meters(ttys):
    """A SimBoard class whose buses named in ``ttys`` are those ttys (a SimbusProcess's): no meter thread of
    those buses runs in the gateway's process. ``board.topology`` stays the whole site (the benches' specs)."""

    class Board(SimBoard):
        def __init__(self, topology=None, clock=None, seed=1):
            inside = {"buses": {name: spec for name, spec in topology.get("buses", {}).items() if name not in ttys}}
            SimBoard.__init__(self, inside, clock, seed)
            self.topology = topology

        def port_path(self, bus):
            return ttys[bus] if bus in ttys else SimBoard.port_path(self, bus)
    return Board


@contextlib.asynccontextmanager
async def reference_gateway(settings=None, services=(), board=None, baud=None, external_meters=False):
    """A Gateway on the simulated reference site, in a fresh state dir, stopped on exit.

    ``services`` are protocol service classes (``name`` = their protocol),
    each made with its door (Gateway.services, in order). The topology is preset (detection is not what we measure)
    and every bus has polled it twice when the body runs; the site's bus
    specs are ``gateway.board.topology``, its Devices ``gateway.topology.devices``. ``board``: a
    function of the topology making the board (a SimBoard by default). ``baud``: both buses
    (the simulated lines and the gateway's settings) at that speed instead of the site's 38400.
    ``external_meters``: the meters answer from a ``tools.simbus`` process (SimbusProcess), not from
    threads of this process; ``gateway.board.buses`` then has no meters.
    """
    topology = load_reference()
    if baud is not None:
        settings = dict(settings or {})
        for name, bus in topology["buses"].items():
            bus["baud"] = baud
            settings["bus.%s.baud" % name] = baud
    meters = SimbusProcess(topology) if external_meters else None
    if meters is not None:
        board = board_with_external_meters(meters.ttys)
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory(prefix="bench-") as state:
        if meters is not None:
            cleanup.callback(meters.close)
        gateway = Gateway((board or SimBoard)(topology=topology), state, dict(settings or {}))
        for make in services:
            gateway.services.append(make(gateway.door(Caller(make.name))))
        await gateway.start()
        try:
            await gateway.topology.replace(devices_from_simulation(topology))
            while min(p.cycles for p in gateway.pollers.values()) < 2:
                await asyncio.sleep(0.05)
            yield gateway
        finally:
            await gateway.stop()


def transaction_time(spec, registers):
    """Wire-time lower bound of one read of ``registers`` on a bus described by ``spec`` (a topology's
    bus): the request (8 bytes) and the answer (5 + 2 per register) on the line, the meter's
    turnaround, the inter-frame silence."""
    baud, parity, stop = spec.get("baud", 38400), spec.get("parity", "N"), spec.get("stop_bits", 1)
    return (rtu.wire_time(8 + 5 + 2 * registers, baud, 8, parity, stop) + spec.get("turnaround_ms", 2) / 1000.0
            + rtu.frame_gap(baud, 8, parity, stop))


def free_port(kind=socket.SOCK_STREAM):
    """A free loopback port (TCP by default, UDP with kind=socket.SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, p):
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, int(p * len(data)))]


def mean(values):
    return statistics.fmean(values) if values else float("nan")


class SimbusProcess:
    """``python -m tools.simbus --pty`` in a process of its own: the meters answer from another interpreter than
    the gateway's (as on a real site), whose threads do not share the gateway's GIL (it would show in the loop's
    lag and the answers' tails). ``topology``: a topology file, a topology ({"buses": ...}) or a dict of bus specs,
    written to a file. ``ttys``: bus -> the pseudo-terminal the gateway opens; ``tty``: the first one."""

    def __init__(self, topology):
        self.dir = tempfile.mkdtemp(prefix="bench-simbus-")
        if isinstance(topology, dict):
            path = os.path.join(self.dir, "topology.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(topology if "buses" in topology else {"buses": topology}, handle)
            topology = path
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.simbus", "--topology", topology, "--pty"],
                                     cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.ttys = {}
        expected = len(load_topology_file(topology)["buses"])
        while len(self.ttys) < expected:
            line = self.proc.stdout.readline()          # "rs485: 12 meters on /dev/pts/N"
            if not line:
                raise RuntimeError("tools.simbus stopped before serving its buses")
            self.ttys[line.split(":", 1)[0]] = line.rsplit(" ", 1)[-1].strip()
        self.tty = next(iter(self.ttys.values()))

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(proc, grace=5):
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
