"""Run the simulated meters of a topology file on serial devices.

    python -m tools.simbus --topology board/topologies/demo.json --device digiware=/dev/ttyUSB1
    python -m tools.simbus --topology board/topologies/demo.json --pty

With ``--device`` the meters answer on a real serial port (e.g. a USB-RS485
adapter wired to the gateway's bus); with ``--pty`` a pseudo-terminal pair is
made per bus and the gateway side is printed, so the daemon can be started
with ``--board rpi --port digiware=/dev/pts/N --port rs485=/dev/pts/M``.
Stops on SIGTERM / Ctrl-C.
"""

import argparse
import os
import signal
import sys
import threading

import serial

from board.base import BUS_NAMES, SystemClock
from board.nullmodem import open_raw_pty
from board.sim import load_topology_file, make_simbus


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.simbus", description=__doc__.split("\n")[0])
    parser.add_argument("--topology", required=True, help="simulated-topology JSON file")
    parser.add_argument("--device", action="append", default=[], metavar="BUS=DEVICE",
                        help="serve the meters of BUS on serial DEVICE (repeatable)")
    parser.add_argument("--pty", action="store_true", help="make a pseudo-terminal pair per bus")
    args = parser.parse_args(argv)
    try:
        topology = load_topology_file(args.topology)
    except (OSError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    clock = SystemClock()
    buses, keep_open = [], []
    targets = dict(text.partition("=")[::2] for text in args.device)
    for n, name in enumerate(BUS_NAMES):
        spec = topology.get("buses", {}).get(name)
        if spec is None:
            continue
        if args.pty:
            master, slave = open_raw_pty()
            keep_open += [master, slave]
            fd, where = master, os.ttyname(slave)
        elif name in targets:
            port = serial.Serial(targets[name], baudrate=spec.get("baud", 38400), parity=spec.get("parity", "N"),
                                 stopbits=spec.get("stop_bits", 1), timeout=0)
            keep_open.append(port)
            fd, where = port.fileno(), targets[name]
        else:
            continue
        bus = make_simbus(fd, name, spec, clock, n)
        bus.start()
        buses.append(bus)
        print("%s: %d meters on %s" % (name, len(bus.meters), where), flush=True)
    if not buses:
        print("error: nothing to serve (give --pty or --device BUS=DEVICE)", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    for bus in buses:
        bus.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
