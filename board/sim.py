"""The simulated board: pseudo-terminals with simulated meters on the far end.

The daemon opens the slave end of each pty through pyserial exactly as it
opens /dev/ttyAMA0 on a Pi; the meters of board/simmeter.py answer on the
master end (board/simbus.py). LEDs, the ADDR button, the watchdog, the clock
and the network are kept in memory so tests can look at them.

Two clocks: ``hardware_clock`` (the system clock, or a test's ManualClock)
runs the simulated meters, which are devices of their own; ``clock``, an
OffsetClock over it, is the gateway's: ``set_system_time`` moves it alone.
"""

import json
import os

from board.base import BUS_NAMES, Board, OffsetClock, SystemClock
from board import simfaults
from board.nullmodem import NullModem, open_raw_pty
from board.simble import SimRadio
from board.simbus import SimBus
from board.simmeter import SimMeter

NETWORK_FILE = "sim-network.json"      # the network configuration the simulated board was given


def parse_netid(text):
    value = int(str(text), 16)
    if not 0 <= value <= 0xFFFFFF:
        raise ValueError("NET ID must be 6 hex digits: %r" % text)
    return value


def load_topology_file(path):
    """Read and check a simulated-topology JSON file (see board/topologies/)."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("buses", {}), dict):
        raise ValueError("%s: expected an object with a 'buses' object" % path)
    for bus, spec in data.get("buses", {}).items():
        if bus not in BUS_NAMES:
            raise ValueError("%s: unknown bus %r" % (path, bus))
        if not isinstance(spec, dict) or not isinstance(spec.get("meters", []), list) \
                or not all(isinstance(meter, dict) for meter in spec.get("meters", [])):
            raise ValueError("%s: bus %r: expected an object with a list of meter objects" % (path, bus))
        for meter in spec.get("meters", []):
            for field in ("reference", "address", "netid"):
                if field not in meter:
                    raise ValueError("%s: meter without %s" % (path, field))
    if not isinstance(data.get("ble", []), list):
        raise ValueError("%s: 'ble' must be a list of simulated BLE sensors" % path)
    return data


def make_meter(spec, clock, seed=0):
    """A SimMeter from one meter entry of a topology file (faults included).

    ``netid`` is the simulator's handle of the meter: the NET ID it reports
    where its family has one (B-30 / Digiware), else the seed of its serial
    number. ``network`` defaults to the product's first network type.
    ``load_flows`` makes circuits export and/or sets their power factor:
    ``[{"load": 2, "export": true, "pf": -0.85}]`` (pf signed as the meters
    show it: - leading, + lagging).
    """
    address = simfaults.RUN_TIME["address"](spec["address"])
    meter = SimMeter(spec["reference"], address, parse_netid(spec["netid"]), clock,
                     loads=spec.get("loads"), seed=seed, network=spec.get("network"),
                     nominal_w=float(spec.get("nominal_w", 20000)))
    flows = spec.get("load_flows", [])
    if not isinstance(flows, list) or not all(isinstance(f, dict) and set(f) <= {"load", "export", "pf"}
                                              for f in flows):
        raise ValueError("load_flows: expected [{\"load\": n, \"export\": bool, \"pf\": signed PF}]")
    for flow in flows:
        meter.configure_load(flow.get("load"), export=flow.get("export"), pf=flow.get("pf"))
    for name, value in simfaults.from_topology(spec).items():
        setattr(meter, name, value)
    if meter.events is not None and ("alarms" in spec or "logical_inputs" in spec):
        meter.events.configure(spec.get("alarms"), spec.get("logical_inputs"))
    return meter


def make_simbus(fd, name, spec, clock, index, seed=1):
    """The simulated bus ``name`` (the ``index``-th of BUS_NAMES) of a topology, answering on ``fd``.

    Seeds depend on the bus's place in BUS_NAMES, so the board and
    tools.simbus simulate the same meters for the same file.
    """
    simbus = SimBus(fd, name=name, seed=seed + index, **simfaults.line_from_topology(spec))
    for i, m in enumerate(spec.get("meters", [])):
        simbus.add(make_meter(m, clock, seed=seed * 100 + index * 40 + i))
    return simbus


class SimBoard(Board):
    kind = "sim"

    def __init__(self, topology=None, clock=None, seed=1):
        Board.__init__(self)
        self.hardware_clock = clock or SystemClock()     # the meters' (separate devices)
        self.clock = OffsetClock(self.hardware_clock)     # the gateway's: set_system_time moves it
        self.topology = topology if isinstance(topology, dict) else (
            load_topology_file(topology) if topology else {"buses": {}})
        self.buses = {}
        self._fds = []
        self.watchdog_kicks = 0
        self._loop = None
        self.upstream = {}
        self.network = None             # the last network configuration applied (apply_network)
        self.network_applied = 0
        self.radio = SimRadio(self.topology.get("ble", ()))     # issue 18: the sensors it hears (board/simble.py)
        try:
            for n, bus in enumerate(BUS_NAMES):
                spec = self.topology.get("buses", {}).get(bus, {})
                if spec.get("upstream"):
                    self.serve_upstream(bus)
                    continue
                master, slave = open_raw_pty()
                self._fds += [master, slave]
                simbus = make_simbus(master, bus, spec, self.hardware_clock, n, seed)
                simbus.path = os.ttyname(slave)
                simbus.fds = (master, slave)
                self.buses[bus] = simbus
        except BaseException:          # a bad topology: nothing left open
            self.close()
            raise
        for simbus in self.buses.values():
            simbus.start()

    def serve_upstream(self, bus):
        """The gateway answers as a Modbus RTU slave on ``bus`` (``bus.rs485.mode`` = slave): the line's
        simulated meters leave it (they would answer on the line the gateway now answers on) and a null-modem
        takes its place, whose far end (``peer_path``) an external RTU master opens. Called before the
        gateway opens the port; a bus already upstream stays as it is."""
        if bus in self.upstream:
            return
        simbus = self.buses.pop(bus, None)
        if simbus is not None:
            simbus.stop()
            for fd in simbus.fds:
                self._fds.remove(fd)
                os.close(fd)
        self.upstream[bus] = NullModem()

    def port_path(self, bus):
        if bus in self.upstream:
            return self.upstream[bus].path
        return self.buses[bus].path

    def peer_path(self, bus):
        """Serial device an external RTU master opens to talk to the gateway's ``bus`` (None: not upstream)."""
        modem = self.upstream.get(bus)
        return modem.peer_path if modem is not None else None

    def find_meter(self, address=None, netid=None):
        for simbus in self.buses.values():
            m = simbus.meter(address=address, netid=netid)
            if m is not None:
                return m
        return None

    def _meter(self, netid):
        meter = self.find_meter(netid=netid)
        if meter is None:
            raise KeyError("no simulated meter with NET ID %06X" % netid)
        return meter

    def configure_meter(self, netid, **changes):
        """Run-time fault injection: silent, extra_delay, crc_error_rate, address, inputs (board/simfaults.py);
        all checked before anything changes."""
        changes = simfaults.checked(changes)
        meter = self._meter(netid)
        with meter.lock:
            for key, value in changes.items():
                if key == "inputs":
                    meter.set_inputs(value)
                else:
                    setattr(meter, key, value)
        return meter

    def _event_log(self, netid):
        meter = self._meter(netid)
        if meter.events is None:
            raise ValueError("a %s keeps no event log" % meter.reference)
        return meter

    def configure_alarms(self, netid, alarms=None, logical_inputs=None):
        """Set a meter's threshold alarm slots and logical inputs (Easy Config's job)."""
        meter = self._event_log(netid)
        with meter.lock:
            meter.events.configure(alarms, logical_inputs)
        return meter

    def inject_event(self, netid, **event):
        """A power-quality event or a device alarm happens now on a meter (board/simevents.py)."""
        meter = self._event_log(netid)
        with meter.lock:
            meter.events.inject(self.hardware_clock.time(), **event)      # the meter's own clock
        return meter

    def ble_scanner(self):
        """The simulated radio: its sensors advertise real frames while a scan runs (board/simble.py)."""
        return self.radio

    def start(self, loop):
        self._loop = loop

    def press_button(self, held_seconds):
        """Simulate the ADDR push button: pressed then released after held_seconds."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._button_released, held_seconds)
        else:
            self._button_released(held_seconds)

    def kick_watchdog(self):
        self.watchdog_kicks += 1

    @property
    def time_offset(self):
        """Seconds the gateway's clock is ahead of the hardware clock (set by ``set_system_time``)."""
        return self.clock.offset

    def wall_clock(self, injected=None):
        """The gateway's clock: ``clock``, over the hardware clock; an injected clock must be that one
        (the board built on it), so the gateway and the meters run on one time base."""
        if injected is not None and injected is not self.hardware_clock:
            raise ValueError("the simulated board runs on another clock: pass the same clock to SimBoard")
        return self.clock

    def set_system_time(self, unix_time):
        self.clock.set(unix_time)

    def apply_network(self, config, state_dir):
        """The simulated board has no system network to change: it records ``config`` (``network``, and
        ``NETWORK_FILE`` in the state directory, written atomically) for tests and GET /api/sim/network."""
        path = os.path.join(state_dir, NETWORK_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(config, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.network = json.loads(json.dumps(config))
        self.network_applied += 1
        return [path]

    def close(self):
        for simbus in self.buses.values():
            simbus.stop()
        for modem in self.upstream.values():
            modem.close()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
