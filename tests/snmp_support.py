"""Helpers of the SNMP tests: the demo site with the agent on a free loopback port, net-snmp's tools.

(No tests here: the SNMP test modules import it.)
"""

import asyncio
import glob
import os
import re
import shutil
import socket

import pytest

from conftest import DemoSite, wait_for
from protocols.snmp import MIB_FILE, ber
from protocols.snmp.agent import SnmpService

T0 = 1_700_000_000.0
ENTERPRISE = "1.3.6.1.4.1.4555"
SYSTEM_OID = (1, 3, 6, 1, 2, 1, 1)
METROLOGY = ENTERPRISE + ".10.20"
V3_READ = ("control", "SHA", "Control-2024", "AES", "Control-2024")
V3_WRITE = ("admin", "SHA", "Admin-2024!", "AES", "Admin-2024!")
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384",
                 "SHA512": "SHA-512"}
# Where net-snmp can find the SMIv2 base modules our MIB imports (Debian ships none with snmp).
BASE_MIB_DIRS = ("/usr/share/snmp/mibs/ietf", "/var/lib/snmp/mibs/ietf", "/usr/share/mibs/ietf",
                 "/usr/lib/erlang/lib/snmp-*/mibs")


def base_mib_dir():
    for pattern in BASE_MIB_DIRS:
        for path in sorted(glob.glob(pattern)):
            if any(os.path.exists(os.path.join(path, "SNMPv2-SMI" + ext)) for ext in ("", ".txt", ".mib", ".my")):
                return path
    pytest.fail("net-snmp needs the SMIv2 base MIB modules (SNMPv2-SMI, -TC, -CONF) to load our MIB: "
                "install the Debian package erlang-snmp (DFSG copies in /usr/lib/erlang/lib/snmp-*/mibs) "
                "or snmp-mibs-downloader")


def mib_path():
    return "%s:%s" % (os.path.dirname(MIB_FILE), base_mib_dir())


def need(tool):
    if shutil.which(tool) is None:
        pytest.fail("%s is missing: install the Debian packages snmp and snmptrapd (make test does)" % tool)


async def run(*args, timeout=60):
    """(exit code, stdout, stderr) of a net-snmp tool; no MIB is loaded unless asked."""
    need(args[0])
    env = dict(os.environ, MIBS="")
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("%s did not finish within %d s" % (args[0], timeout))
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def parse(out):
    """{numeric OID: value text} from -On -OQ output."""
    values = {}
    for line in out.splitlines():
        if " = " in line:
            oid, value = line.split(" = ", 1)
            values[oid.strip().lstrip(".")] = value.strip()
    return values


class Site(DemoSite):
    """The demo site with the SNMP agent on loopback port 0: the agent binds a free port and reports it."""

    def __init__(self, tmp_path, overrides=None, clock=None):
        super().__init__(tmp_path, SnmpService, {"snmp.enabled": True, "snmp.port": 0,
                                                  "snmp.bind": "127.0.0.1", "poll.backoff_max_s": 1},
                         overrides, clock)

    async def ready(self, stack):
        await wait_for(lambda: self.service.running)

    @property
    def port(self):
        """The port the agent bound (None while closed; a reopen on port 0 binds another)."""
        return self.service.port

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def v1(self, community="public"):
        return ["-v1", "-c", community, "-r", "1", "-t", "2"]

    def v2c(self, community="publicV2"):
        return ["-v2c", "-c", community, "-r", "1", "-t", "2"]

    @staticmethod
    def v3(user, auth, auth_pass, priv="none", priv_pass=None):
        args = ["-v3", "-u", user, "-a", NET_SNMP_AUTH[auth], "-A", auth_pass, "-r", "1", "-t", "2"]
        if priv == "none":
            return args + ["-l", "authNoPriv"]
        return args + ["-l", "authPriv", "-x", priv, "-X", priv_pass]

    async def get(self, credentials, *oids):
        rc, out, err = await run("snmpget", "-On", "-OQ", "-Oe", *credentials, self.target, *oids)
        return rc, parse(out), out + err

    async def set(self, credentials, *assignments):
        """snmpset of ``assignments`` (OID, type, value, ...): (exit code, stdout, stderr)."""
        return await run("snmpset", "-On", "-OQ", *credentials, self.target, *assignments)


# ---------------------------------------------------------------- a raw UDP client

class Client:
    """A raw UDP socket (closed on leaving ``with``): send bytes, wait a bounded time for an answer."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = ("127.0.0.1", port)
        self.request_id = 1000

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data):
        self.sock.sendto(data, self.address)

    async def receive(self, timeout):
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 70000), timeout)
        except asyncio.TimeoutError:
            return None

    def arrived(self):
        """Every datagram already in the socket's buffer."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(70000))
            except BlockingIOError:
                return out

    async def request(self, oids, pdu=ber.GET, community=b"publicV2", version=1, before=None, **kw):
        """(decoded answer, bytes) of a request sent now. Answers to what this socket sent before arrive
        first: each is appended to ``before``, or, without a list, is an error (nothing was to be answered)."""
        self.request_id += 1
        self.send(ber.encode_request(version, community, pdu, self.request_id, oids, **kw))
        while True:
            data = await self.receive(5.0)
            assert data is not None, "no answer to a valid request"
            try:
                answer = ber.decode_response(data)
            except ber.BerError:
                answer = None
            if answer is not None and answer[0] == self.request_id:
                return answer, data
            assert before is not None, ("an answer to something sent before came first", data)
            before.append(data)

    async def counter(self, oid, before=None):
        (_rid, status, _index, varbinds), _d = await self.request([oid], before=before)
        assert status == 0
        return varbinds[0][2]


# ---------------------------------------------------------------- raw SNMPv3 messages

def v3_message(msg_id, flags, engine_id=b"", user=b"", scoped=None, encrypted=None, boots=0, engine_time=0,
               model=3, max_size=65507):
    """An SNMPv3 message built field by field (ber.py), valid or not as a test needs: ``scoped`` is a plaintext
    scoped PDU's TLV, ``encrypted`` an encryptedPDU's octets (one of them)."""
    usm = ber.tlv(ber.SEQUENCE, ber.tlv(4, engine_id) + ber.encode_integer(boots) + ber.encode_integer(engine_time)
                  + ber.tlv(4, user) + ber.tlv(4, bytes(12) if flags & 1 else b"")
                  + ber.tlv(4, bytes(8) if flags & 2 else b""))
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(max_size)
                     + ber.tlv(4, bytes((flags,))) + ber.encode_integer(model))
    data = scoped if encrypted is None else ber.tlv(4, encrypted)
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header + ber.tlv(4, usm) + data)


def scoped_get(request_id, oids=(), context_engine_id=b""):
    """A plaintext scoped PDU carrying a GET of ``oids``."""
    varbinds = b"".join(ber.tlv(ber.SEQUENCE, ber.encode_oid(oid) + b"\x05\x00") for oid in oids)
    pdu = ber.tlv(ber.GET, ber.encode_integer(request_id) + ber.encode_integer(0) + ber.encode_integer(0)
                  + ber.tlv(ber.SEQUENCE, varbinds))
    return ber.tlv(ber.SEQUENCE, ber.tlv(4, context_engine_id) + ber.tlv(4, b"") + pdu)


# ---------------------------------------------------------------- trap receiver (net-snmp's snmptrapd)

RAISED, CLEARED, ACTIVE, INPUT = ("%s.10.30.0.%d" % (ENTERPRISE, n) for n in (1, 2, 3, 4))
OBJ = "%s.10.30.5.%%d.0" % ENTERPRISE
SOURCE, NUMBER, ADDRESS, INPUT_NO, VALUE = (OBJ % n for n in (2, 1, 9, 11, 12))
SILENT_NETID = 0xDC85EA                  # the I-35 at address 5 in the demo site
OF_5 = {SOURCE: "digiware:5", NUMBER: "3"}   # the varbinds of its system alarm 3 (Modbus slave timeout)


def udp_ports_of(pid):
    """The local ports of the UDP sockets process ``pid`` holds (its own fds, matched by socket inode in its
    network namespace's table): how a program that bound port 0 tells which port it got."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    with open("/proc/%d/net/udp" % pid) as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


class TrapReceiver:
    """snmptrapd on loopback, logging to a file the test reads. It binds port 0 and ``port`` is the one it got,
    once started (a test may instead set ``port`` before starting it, to a port it must use)."""

    def __init__(self, tmp_path, engine_id=None):
        self.dir = tmp_path / "snmptrapd"
        self.dir.mkdir(exist_ok=True)
        self.port = None
        self.log = self.dir / "traps.log"
        if engine_id:      # SNMPv3 only: the read user, authenticated and encrypted, with our engine ID
            lines = ["createUser -e 0x%s control SHA Control-2024 AES Control-2024" % engine_id,
                     "authUser log control priv"]
        else:              # v1/v2c: only the trap community is logged
            lines = ["authCommunity log trap"]
        (self.dir / "snmptrapd.conf").write_text("\n".join(lines) + "\n")
        self.proc = None

    async def __aenter__(self):
        need("snmptrapd")
        env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(self.dir))
        self.proc = await asyncio.create_subprocess_exec(
            "snmptrapd", "-f", "-Lf", str(self.log), "-On", "-C", "-c", str(self.dir / "snmptrapd.conf"),
            "udp:127.0.0.1:%d" % (self.port or 0), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await wait_for(lambda: self.log.exists() and "NET-SNMP version" in self.log.read_text())
        if self.port is None:
            ports = udp_ports_of(self.proc.pid)          # the listening socket is open once it logs its start
            assert len(ports) == 1, "snmptrapd holds UDP ports %s" % ports
            self.port = ports.pop()
        return self

    async def __aexit__(self, *exc):
        self.proc.terminate()
        await self.proc.wait()

    def traps(self):
        """[(trap OID, {varbind OID: value text})] in arrival order (v1 traps as their v2 OID)."""
        text = self.log.read_text() if self.log.exists() else ""
        out = []
        for block in re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )", text):
            found = re.search(r"\.1\.3\.6\.1\.6\.3\.1\.1\.4\.1\.0 = OID: \.(\S+)", block)
            if found:
                trap = found.group(1)
            else:
                found = re.search(r"\.(\S+) Enterprise Specific Trap \((\d+)\)", block)
                if not found:
                    continue
                trap = "%s.0.%s" % found.groups()
            varbinds = dict((oid.lstrip("."), value.strip().strip('"'))
                            for oid, value in re.findall(r"(\.[0-9.]+) = [^:\t]+: ([^\t\n]*)", block))
            out.append((trap, varbinds))
        return out

    def count(self, trap, **where):
        return sum(1 for t, vb in self.traps() if t == trap and all(vb.get(k) == v for k, v in where.items()))


def signed_v3(user, engine_id, boots, engine_time, msg_id, scoped, salt=b"\0" * 7 + b"\1", encrypted=None,
              mac_user=None):
    """An authPriv, reportable v3 message of ``user`` (a usm.User) carrying ``scoped`` encrypted (or the given
    ``encrypted`` octets), signed with ``mac_user``'s key (default: the user's own)."""
    if encrypted is None:
        encrypted = user.crypt(scoped, boots, engine_time, salt, True)
    mac = user.mac_length
    usm = ber.tlv(ber.SEQUENCE, ber.tlv(4, engine_id) + ber.encode_integer(boots) + ber.encode_integer(engine_time)
                  + ber.tlv(4, user.name) + ber.tlv(4, bytes(mac)) + ber.tlv(4, salt))
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(65507) + b"\x04\x01\x07"
                     + ber.encode_integer(3))
    message = ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header + ber.tlv(4, usm) + ber.tlv(4, encrypted))
    where = message.index(bytes(mac) + b"\x04" + bytes((len(salt),)) + salt)
    return message[:where] + (mac_user or user).sign(message) + message[where + mac:]
