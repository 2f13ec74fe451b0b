"""Shared fixtures: a gateway on the simulated board, in this process.

Tests use ``asyncio.run`` in plain functions (no asyncio plugin). Waiting
helpers poll for a condition with a generous guard timeout: a guard that
expires is a failure, never a performance assertion.
"""

import asyncio
import contextlib
import copy
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from board.sim import SimBoard, load_topology_file
from core import catalogue, modbus_rtu as rtu
from daemon.blocking import reset as reset_blocking
from daemon.gateway import Gateway
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:        # bench/ is a package of the repository, not installed: tests use its helpers
    sys.path.append(REPO)
DEMO_TOPOLOGY = os.path.join(REPO, "board", "topologies", "demo.json")
REFERENCE_TOPOLOGY = os.path.join(REPO, "board", "topologies", "reference32.json")   # the 32-meter site

# Scan only the addresses the test topologies use, to keep detection short.
# The daemon's firewall (issue 15) is off in the gateways tests start: the services' own defences are tested by
# flooding them from one loopback address, which the firewall would ban first; tests/test_firewall_wire.py turns
# it on.
# The tests' gateways: a short scan, no firewall (their own floods come from 127.0.0.1), and the smallest store
# the schema allows (37 MB instead of 132 MB written with zeros at each start: a suite of several hundred
# gateways would write tens of GB); tests of retention and capacity give their own geometry.
# The tests' settings. The response timeouts are 300 ms, not the product's 100: the simulated meters are
# threads of the test's own process, and on a loaded CI machine (two test workers, browsers) a thread can wake
# 100 ms late; the master would then call a meter lost that only its simulator left behind. Tests about
# timeouts set their own.
FAST_SCAN = {"discovery.last_address": 24, "firewall.enabled": False, "storage.points_per_series": 1464,
             "bus.digiware.timeout_ms": 300, "bus.rs485.timeout_ms": 300}


def demo_topology():
    return load_topology_file(DEMO_TOPOLOGY)


def demo_devices():
    """The demo site's devices, for tests that preset the topology instead of detecting it."""
    return devices_from_simulation(demo_topology())


def free_tcp_port():
    """A loopback TCP port free at the time of the call (bind, read, close: another program may take it).

    Not for our own servers: they bind port 0 and report the port they got
    (``ModbusTcpService.status()["port"]``, ``SnmpService.port``,
    ``BacnetService.port``, ``HttpServer.port``, the daemon's start-up banner
    and /api/status). Only for what cannot bind 0 itself, and for a port
    number that is itself the input under test (a change of ``snmp.port``).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_udp_port():
    """free_tcp_port for UDP: for peers that cannot bind port 0 themselves (the Node.js BACnet client
    @bacnet-js/client takes its port as a number) and for a port number under test; never for our servers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolution(reference, load, key):
    """How far a value the gateway read may be from what the simulated meter holds: the step of the
    register behind ``key`` (an e48 energy counts in 10 units, bits are whole, others step by their multiplier)."""
    _reg, kind, mult = catalogue.measurement_map(reference, load)[key]
    return 10 if kind == "e48" else (1 if kind.startswith("bit") else abs(mult))


def udp_port_is_free(port):
    """Whether nothing listens on loopback UDP ``port`` (a service that closed its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def topology_with(meters_digiware=(), meters_rs485=(), baud=38400):
    return {"buses": {
        "digiware": {"baud": baud, "turnaround_ms": 2, "meters": [dict(m) for m in meters_digiware]},
        "rs485": {"baud": baud, "turnaround_ms": 2, "meters": [dict(m) for m in meters_rs485]},
    }}


@contextlib.asynccontextmanager
async def running_gateway(state_dir, topology, overrides=None, clock=None, services=None, prepare_board=None,
                          **gateway_options):
    """A started Gateway on a fresh simulated board; stopped on exit.

    ``prepare_board(board)`` runs before the gateway starts (meter state
    carried across a restart); ``gateway_options`` go to Gateway
    (storage_geometry, curve_overrides).
    """
    board = SimBoard(topology=copy.deepcopy(topology), clock=clock)
    if prepare_board is not None:
        prepare_board(board)
    settings = dict(FAST_SCAN)
    settings.update(overrides or {})
    gateway = Gateway(board, str(state_dir), settings, clock=clock, **gateway_options)
    for make in services or ():
        door = service_door(gateway, make)
        gateway.services.append(make(door, board) if getattr(make, "with_board", False) else make(door))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def service_door(gateway, make):
    """The door a service factory gets, as the composition root builds it: ``make.name`` is the
    protocol (modbus, snmp, bacnet, rtu_slave, or web for ``web_server``)."""
    protocol = make.name
    return gateway.door(Caller(protocol, "user" if protocol == "web" else None))


def status_of(gateway):
    """The /api/status document, as the web's door builds it."""
    return gateway.door(Caller("web", "user")).status()


def web_server(port=0):
    """A service factory: the web application on loopback ``port`` (0: the server binds a free one) over its
    door, with the simulated board's routes mounted as the composition root does (``daemon.__main__.board_routes``).
    Once the gateway started, ``make.server.port`` is the port the server bound."""
    from daemon.__main__ import board_routes
    from webconfig.app import make_app
    from webconfig.server import HttpServer

    def make(door, board):
        make.server = HttpServer(make_app(door, mount=board_routes(board)), host="127.0.0.1", port=port)
        return make.server
    make.name, make.with_board, make.server = "web", True, None
    return make


def record_requests(simbus):
    """A list that gets the (unit, PDU) of every well-formed request frame the simulated line ``simbus`` serves
    from now on: frames counted on the line itself, not by the engine that sent them."""
    frames, serve = [], simbus._serve

    def spy(frame, arrived):
        if rtu.check_crc(frame):
            frames.append(rtu.parse_request(frame))
        serve(frame, arrived)
    simbus._serve = spy
    return frames


def keeping_event_log(log, netid):
    """A prepare_board hook: the meter ``netid`` kept its event log ``log`` across the gateway's restart."""
    def prepare(board):
        meter = board.find_meter(netid=netid)
        meter.events, log.meter = log, meter
    return prepare


class DemoSite:
    """The demo site's gateway with one protocol service, its topology preset and every bus polled twice.

    ``service`` makes the service from its door (Gateway.services[0]),
    ``settings`` are its own (port on loopback), ``overrides`` a test's
    changes. ``ready(stack)`` is the service's hook once polling is done: wait
    until it serves the site, start what the tests talk to it with (pushing
    its closing on ``stack``, which closes before the gateway stops).
    """

    def __init__(self, tmp_path, service, settings, overrides=None, clock=None):
        self.state_dir = tmp_path / "state"
        self.settings = dict(settings)
        self.settings.update(overrides or {})
        self.service_factory = service
        self.clock = clock

    async def ready(self, stack):
        pass

    async def __aenter__(self):
        commission_accounts(str(self.state_dir))       # a commissioned site: alarm 8 never raised
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, demo_topology(), self.settings, clock=self.clock, services=[self.service_factory]))
            self.service = self.gw.services[0]
            await self.gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in self.gw.pollers.values()), guard=30)
            await self.ready(stack)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc):
        return await self._stack.__aexit__(*exc)


# Every gateway starts with the manual's default passwords, so alarm 8 is active for them until they are changed
# (SPEC §6); a test that expects "no alarm" means "no alarm but that one".
DEFAULT_PASSWORDS_ALARM = (8, "defaults")


def other_alarms(gw):
    """The active system alarms of ``gw`` besides the default-passwords one."""
    return dict((key, state) for key, state in gw.alarms.active.items() if key != DEFAULT_PASSWORDS_ALARM)


def other_raised(gw):
    """(alarm, source) of every "raised" event besides the default-passwords one."""
    return [(e["alarm"], e["source"]) for e in gw.alarms.events()
            if e.get("event") == "raised" and (e.get("alarm"), e.get("source")) != DEFAULT_PASSWORDS_ALARM]


_COMMISSIONED = {}


def commission_accounts(state_dir):
    """Write the accounts file of a commissioned gateway into ``state_dir`` before it starts: every profile's
    password is STRONG_PASSWORDS' (hashed once per test session), Totem unlocked. Alarm 8 is then never raised
    for the default passwords, not even for the first moments (an SNMP agent announces what is active at start)."""
    from daemon.atomicfile import write_json
    from daemon.security import accounts
    if not _COMMISSIONED:
        _COMMISSIONED.update((p, accounts._hash(STRONG_PASSWORDS[p])) for p in accounts.PASSWORD_PROFILES)
    changed = time.time()
    profiles = dict((p, {"hash": _COMMISSIONED[p], "default": False, "changed": changed, "failures": 0,
                         "locked_until": 0}) for p in accounts.PASSWORD_PROFILES)
    os.makedirs(state_dir, exist_ok=True)
    write_json(os.path.join(state_dir, accounts.FILE_NAME),
               {"version": 1, "profiles": profiles, "recovery": None, "totem_locked": False}, True)


async def retire_default_passwords(gw):
    """Every profile's default password changed to STRONG_PASSWORDS (Cyber Security unlocks Totem for it), as a
    commissioned gateway is: then no alarm is active unless a test causes one."""
    from daemon.security.rights import Caller
    door = gw.door(Caller("web", "user", "192.0.2.1"))
    sessions = {}
    for profile in ("advanced", "admin", "cyber", "totem"):
        if profile == "totem":
            await door.as_caller(door.session_caller(sessions["cyber"])).unlock_totem()
        first = await door.login(profile, DEFAULT_PASSWORDS[profile])
        changed = await door.change_password(first["session"], DEFAULT_PASSWORDS[profile], STRONG_PASSWORDS[profile])
        sessions[profile] = changed["session"]
    assert DEFAULT_PASSWORDS_ALARM not in gw.alarms.active


async def wait_for(predicate, guard=20.0, step=0.02):
    """Wait until predicate() is true; fail the test if the guard expires."""
    loop = asyncio.get_running_loop()
    end = loop.time() + guard
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached within the %.0f s guard" % guard)
        await asyncio.sleep(step)


async def polled(gateway):
    """Until every answering device was polled again (fresh values after a ManualClock moved).

    Two cycles: the one running when the clock moved may have read part of a device before the move.
    """
    await wait_for(lambda: all(d.address in gateway.pollers[d.bus].states for d in gateway.topology.devices))
    marks = dict((bus, dict(p.device_cycles)) for bus, p in gateway.pollers.items())

    def done():
        return all(p.device_cycles[a] > marks[bus].get(a, 0) + 1
                   for bus, p in gateway.pollers.items() for a, state in p.states.items() if not state.lost)
    await wait_for(done)


async def detect(gateway, mode="full"):
    assert gateway.discovery.start(mode)
    await gateway.discovery.wait()
    assert gateway.discovery.state == "done", gateway.discovery.status()


# ---------------------------------------------------------------- the daemon in its own process, over HTTP

def start_daemon(state_dir, *args, log_level="warning", guard=60.0):
    """``python -m daemon`` in its own process, HTTP, HTTPS and Modbus TCP on loopback ports it binds itself (port 0);
    ``args`` choose the board and the rest. Returns the process once its start-up banner named the web
    server's port: ``proc.base`` is its URL; other services' ports are in /api/status ``services``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--state-dir", str(state_dir), "--http-port", "0",
         "--https-port", "0", "--set", "http.bind=127.0.0.1", "--modbus-port", "0", "--set", "modbus.bind=127.0.0.1",
         "--log-level", log_level] + list(args),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.http_port = _banner_http_port(proc, guard)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.base = "http://127.0.0.1:%d" % proc.http_port
    return proc


def _banner_http_port(proc, guard):
    """The port of "web status page : http://host:PORT/" in the daemon's start-up banner (read from the pipe's
    descriptor, so nothing stays buffered in proc.stdout for a later communicate())."""
    fd, seen, end = proc.stdout.fileno(), b"", time.monotonic() + guard
    while True:
        found = re.search(rb"web status page : http://[^\s/]+:(\d+)/", seen)
        if found:
            proc.banner = seen.decode("utf-8", "replace")      # what was read of the banner, for its other lines
            return int(found.group(1))
        left = end - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError("no start-up banner from the daemon (exit code %s): %r\n%s" % (
                proc.poll(), seen, proc.stderr.read() if proc.poll() is not None else ""))
        seen += chunk


def http_get(url):
    """(status, Content-Type, body bytes) of a GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def http_json(url, body=None):
    """(status, decoded answer) of a GET, or of a POST of ``body`` as JSON; an HTTP error is an answer too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# The passwords the harness gives the profiles at their forced first change (the rule: >= 10 characters with
# upper and lower case, a digit and a special character).
STRONG_PASSWORDS = {"advanced": "Advanced-Pass-2026", "totem": "Totem-Pass-2026!", "admin": "Admin-Pass-2026!",
                    "cyber": "Cyber-Pass-2026!"}
DEFAULT_PASSWORDS = {"advanced": "Advanced", "totem": "Totem", "admin": "Admin", "cyber": "Cyber"}   # the manual


class WebClient:
    """A browser-like client of the web API over real HTTP: keeps the session cookie and the CSRF token and
    sends them (the token in X-CSRF-Token on every POST), as docs/status-api.md tells a script to."""

    def __init__(self, base):
        self.base, self.cookie, self.csrf, self.session = base.rstrip("/"), None, None, None

    def request(self, method, path, body=None, headers=None, raw=None):
        """(status, decoded JSON answer or the bytes, response headers)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"}
        if self.cookie:
            sent["Cookie"] = "m70_session=" + self.cookie
        if self.csrf and method != "GET":
            sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=dict((k, v) for k, v in sent.items() if v is not None))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, answer, got = exc.code, exc.read(), exc.headers
        cookie = re.search(r"m70_session=([^;]*)", got.get("Set-Cookie") or "")
        if cookie:
            self.cookie = cookie.group(1) or None
        try:
            answer = json.loads(answer)
        except ValueError:
            pass
        return status, answer, got

    def get(self, path):
        return self.request("GET", path)[:2]

    def post(self, path, body=None):
        return self.request("POST", path, {} if body is None else body)[:2]

    def login(self, profile, password="", language="en"):
        status, answer = self.post("/api/login", {"profile": profile, "password": password, "language": language})
        if status == 200:
            self.csrf, self.session = answer["csrf"], answer
        return status, answer

    def change_password(self, current, new):
        status, answer = self.post("/api/password", {"current": current, "new": new})
        if status == 200:
            self.csrf, self.session = answer["csrf"], answer
        return status, answer


def web_login(base, profile="admin", language="en"):
    """A WebClient logged in as ``profile`` through the real routes. A profile still on its default password
    is changed to STRONG_PASSWORDS[profile] first (the forced change); one changed before logs in with it."""
    client = WebClient(base)
    if profile == "user":
        assert client.login("user", "", language)[0] == 200
        return client
    status, answer = client.login(profile, DEFAULT_PASSWORDS[profile], language)
    if status == 401:
        status, answer = client.login(profile, STRONG_PASSWORDS[profile], language)
    assert status == 200, answer
    if answer["must_change"]:
        status, answer = client.change_password(DEFAULT_PASSWORDS[profile], STRONG_PASSWORDS[profile])
        assert status == 200 and not answer["must_change"], answer
    return client


def wait_until(predicate, guard=60.0):
    """wait_for without an event loop (a daemon in its own process): the first true value of predicate();
    a refused connection counts as not yet."""
    end = time.monotonic() + guard
    while time.monotonic() < end:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("not reached within the %.0f s guard" % guard)


# ---------------------------------------------------------------- mbpoll, an independent Modbus master

def mbpoll(*args):
    assert shutil.which("mbpoll"), "mbpoll missing: run `make test` (Debian package mbpoll)"
    return subprocess.run(["mbpoll", "-1", "-0", "-q"] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=30)


def parse_mbpoll(text):
    """{register: value} of mbpoll's output."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "]:" in line:
            reg, _, value = line.partition("]:")
            values[int(reg[1:])] = int(value.split()[0])
    return values


@pytest.fixture(autouse=True)
def _fresh_executor():
    yield
    reset_blocking()
