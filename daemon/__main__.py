"""Entry point: ``python -m daemon`` (the public command line, see README).

Builds the board, the gateway and its northbound services on one asyncio
loop, runs until SIGTERM/SIGINT, then stops cleanly with storage flushed.
"""

import argparse
import asyncio
import logging
import signal
import sys

from board import make_board
from daemon import blocking
from daemon.limits import raise_descriptor_limit
from daemon.memory import return_large_blocks
from daemon.state import settings as settings_mod
from daemon.state.settings import SettingError, parse_assignment, parse_value
from daemon.upgrade import trial

PORT_FLAGS = (("--http-port", "http.port"), ("--https-port", "https.port"), ("--modbus-port", "modbus.port"),
              ("--snmp-port", "snmp.port"), ("--bacnet-port", "bacnet.port"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m daemon", description="Energy-metering gateway daemon")
    parser.add_argument("--board", choices=("sim", "rpi"), default="rpi", help="hardware: rpi or the simulated board")
    parser.add_argument("--state-dir", default="/var/lib/gateway", help="where configuration and data live")
    parser.add_argument("--topology", help="simulated board: JSON file of the simulated meters")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting by its dotted name for this run (repeatable)")
    for flag, setting in PORT_FLAGS:
        parser.add_argument(flag, type=int, metavar="PORT", help="override %s (0: any free port, shown at start)"
                            % setting)
    parser.add_argument("--discover", choices=("fast", "full"), help="run an auto-detection at start")
    parser.add_argument("--port", action="append", default=[], metavar="BUS=DEVICE",
                        help="rpi board: serial device of a bus, e.g. digiware=/dev/ttyUSB0")
    parser.add_argument("--log-level", choices=settings_mod.row("log.level")[settings_mod.BOUNDS],
                        help="override log.level for this run")
    return parser.parse_args(argv)


def overrides_from(args):
    overrides = {}
    for text in args.set:
        key, value = parse_assignment(text)
        overrides[key] = value
    for flag, setting in PORT_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value == 0:            # any free port, bound by the service and shown in the start-up banner
            overrides[setting] = 0
        elif value is not None:
            overrides[setting] = parse_value(setting, str(value))
    if args.log_level is not None:
        overrides["log.level"] = args.log_level
    return overrides


def build(args, overrides):
    from daemon.gateway import Gateway
    from daemon.security.rights import Caller
    from webconfig.app import make_app
    from webconfig.https_serve import HttpsServer, redirecting
    from webconfig.server import HttpServer

    if args.board == "sim":
        board = make_board("sim", topology=args.topology)
    else:
        ports = {}
        for text in args.port:
            bus, _, device = text.partition("=")
            ports[bus] = device
        board = make_board("rpi", **({"ports": ports} if ports else {}))
    gateway = Gateway(board, args.state_dir, overrides)
    if gateway.settings.get("bus.rs485.mode") == "slave":
        board.serve_upstream("rs485")        # the simulated board: a null-modem in place of that line's meters
    web_door = gateway.door(Caller("web", "user"))
    app = make_app(web_door, mount=board_routes(board))
    # issue 15: the same pages over HTTPS (the door's certificate); plain HTTP redirects to it by https.redirect
    https = HttpsServer(app, web_door, host=gateway.settings.get("http.bind"), port=gateway.settings.get("https.port"))
    http = HttpServer(redirecting(app, web_door, https, board.kind, gateway.settings.get("http.bind")),
                      host=gateway.settings.get("http.bind"), port=gateway.settings.get("http.port"))
    http.name = "http"
    gateway.services.append(http)
    gateway.services.append(https)
    for protocol, make in northbound_services() + outbound_services():
        gateway.services.append(make(gateway.door(Caller(protocol))))
    return gateway, http


def board_routes(board):
    """The simulated board's HTTP routes (fault injection), mounted on the web app on that board only."""
    if board.kind != "sim":
        return None
    from board import simroutes
    return lambda app, web: simroutes.mount(app, board, web)


def northbound_services():
    """(protocol, factory) of the switched northbound services (each opens/closes itself, gets its door)."""
    from protocols.bacnet import BacnetService
    from protocols.modbus.rtu_slave import RtuSlaveService
    from protocols.modbus.tcp import ModbusTcpService
    from protocols.snmp.agent import SnmpService
    return [("modbus", ModbusTcpService), ("rtu_slave", RtuSlaveService), ("snmp", SnmpService),
            ("bacnet", BacnetService)]


def outbound_services():
    """(caller, factory) of the gateway's own clients (issue 16): scheduled exports, alarm e-mail reports, the SNTP
    client; issue 18: the MQTT publisher."""
    from outbound.export.service import ExportService
    from outbound.mail.service import MailService
    from outbound.mqtt.service import MqttService
    from outbound.sntp.service import SntpService
    return [("push", ExportService), ("mail", MailService), ("sntp", SntpService), ("mqtt", MqttService)]


async def run(args, overrides):
    from daemon.security.rights import Caller
    gateway, http = build(args, overrides)
    logging.getLogger().setLevel(gateway.settings.get("log.level").upper())   # live changes: Gateway
    log_on_gateway_time(gateway.clock)
    loop = asyncio.get_running_loop()
    # one bounded pool for all blocking work, a library's own run_in_executor(None, ...) included
    blocking.executor().install_as_default(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    host = gateway.settings.get("http.bind")
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print("gateway running on the %s board (NET ID %s)" % (gateway.board.kind, gateway.identity["netid"]), flush=True)
    print("  web status page : http://%s:%d/" % (shown, http.port), flush=True)
    print("  status API      : http://%s:%d/api/status" % (shown, http.port), flush=True)
    https = next((service for service in gateway.services if getattr(service, "name", None) == "https"), None)
    if https is not None and https.status()["running"]:
        print("  web over HTTPS  : https://%s:%d/" % (shown, https.port), flush=True)
    for service in gateway.services[1:]:
        if getattr(service, "name", None) == "https":
            continue                             # its line is above, with the web pages'
        state = service.status()
        if service.name == "rtu_slave":
            for line in rtu_slave_banner(gateway, state):
                print(line, flush=True)
        elif state.get("running") and "port" in state:
            print("  %-16s: %s port %s" % (service.name, state.get("transport", "tcp").upper(), state["port"]),
                  flush=True)
        elif state.get("running"):                 # a client of another server (MQTT, exports): no port of ours
            print("  %-16s: %s" % (service.name, "to %s" % state["broker"] if "broker" in state else "running"),
                  flush=True)
    for bus, engine in gateway.engines.items():
        print("  %-8s bus    : %s at %d baud (Modbus RTU master)" % (bus, gateway.board.port_path(bus), engine.baud),
              flush=True)
    if args.discover:
        gateway.door(Caller("cli")).start_detection(args.discover)
        print("  auto-detection  : %s, progress at /api/discovery" % args.discover.upper(), flush=True)
    on_trial = trial.trial_of()
    watcher = loop.create_task(trial.watch(gateway, *on_trial, stop)) if on_trial else None
    await stop.wait()
    logging.getLogger("gateway").info("stopping")
    failed = watcher is not None and watcher.done() and not watcher.cancelled() and watcher.exception() is None \
        and watcher.result() == "failed"
    if watcher is not None:
        watcher.cancel()
    await gateway.stop()
    if failed:
        return trial.TRIAL_FAILED_EXIT          # the launcher rolls back at the next start
    if gateway.reboot_requested:               # who asked for a reboot (Diagnosis)
        from daemon.api import REBOOT_EXIT
        return REBOOT_EXIT                     # systemd (Restart=always) starts the daemon again: the web's reboot
    return 0


def rtu_slave_banner(gateway, state):
    """The banner's lines about the RS485 port in slave mode: where an upstream RTU master reaches it (on the
    simulated board, the far end of its null-modem) and an mbpoll line to try it with."""
    settings = gateway.settings
    if settings.get("bus.rs485.mode") != "slave":
        return []
    if not state.get("running"):
        return ["  %-16s: not running (%s)" % ("rtu_slave", state.get("error") or "policy.modbus_slave is off")]
    baud, parity, stop_bits = (settings.get("bus.rs485." + name) for name in ("baud", "parity", "stop_bits"))
    unit = settings.get("bus.rs485.address")
    line = "unit %d at %d baud %d%s%d" % (unit, baud, 8, parity, stop_bits)
    peer = gateway.board.peer_path("rs485")
    if peer is None:
        return ["  %-16s: %s on %s" % ("rtu_slave", line, gateway.board.port_path("rs485"))]
    mbpoll = "mbpoll -m rtu -b %d -P %s%s -a %d -0 -r 0 -c 16 -1 %s" % (
        baud, {"N": "none", "E": "even", "O": "odd"}[parity], " -s 2" if stop_bits == 2 else "", unit, peer)
    return ["  %-16s: %s; an RTU master opens %s (null-modem to %s)" % (
                "rtu_slave", line, peer, gateway.board.port_path("rs485")),
            "  %-16s: %s" % ("try it", mbpoll)]


def log_on_gateway_time(clock):
    """Stamp log records with the gateway's clock when it is not the system clock (the simulated board,
    whose time a synchronization moves by an offset): logs, event log and protocols tell one time."""
    from board.base import SystemClock
    if isinstance(clock, SystemClock):
        return                                       # a Pi: the system clock is the gateway's
    make_record = logging.getLogRecordFactory()
    make_record = getattr(make_record, "system_factory", make_record)      # once, even if run() runs again

    def factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        now = clock.time()
        if abs(now - record.created) >= 0.001:       # the board's clock was set away from the system's
            record.created, record.msecs = now, int((now - int(now)) * 1000) + 0.0
        return record
    factory.system_factory = make_record
    logging.setLogRecordFactory(factory)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=(args.log_level or "info").upper(),     # until the settings are read
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        overrides = overrides_from(args)
    except SettingError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    raise_descriptor_limit()        # before any socket: a flood meets the servers' caps, not EMFILE (daemon/limits.py)
    return_large_blocks()           # Argon2's 19 MiB per password check goes back to the system (daemon/memory.py)
    try:
        return asyncio.run(run(args, overrides))
    except (OSError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    finally:
        from daemon.blocking import reset
        reset()


if __name__ == "__main__":
    sys.exit(main())
