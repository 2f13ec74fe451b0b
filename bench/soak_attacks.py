"""The soak bench's attacks, one function each: what a hostile client on the LAN sends.

Every attack is ``attack(target, n)``: ``target`` knows the daemon's ports and
can restart it, ``n`` is the attack's size (the bench's table gives the full and
the short size). It returns ``(requests sent, note)``, or ``(requests sent,
note, applied)`` when it can see whether the gateway applied what it had to
refuse: ``applied`` counts those (SPEC §11: bad input changes nothing). Attacks are bounded in
count; where they wait (for a marker answer, a connection), they wait with
generous guards, so a slow machine sends the same attack, only later.
They are the ones that found issue 13's defects, written with raw sockets and
the standard library; nothing here uses the gateway's codecs.
"""

import collections
import json
import random
import select
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

from bench import soak_wire as wire

LOCAL = "127.0.0.1"
WINDOW = 20              # datagrams / frames sent before a marker must be answered: no buffer overflows


# ------------------------------------------------------------------ helpers

def _connect(port, timeout=10.0):
    sock = socket.create_connection((LOCAL, port), timeout=timeout)
    return sock


def _reset(sock):
    """Close with a RST (SO_LINGER 0), as a dropped client does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _try_send(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _responses(data):
    """Status codes of the whole HTTP/1.1 responses in ``data``, and the bytes consumed."""
    codes, pos = [], 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return codes, pos
        head = data[pos:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if end + 4 + length > len(data):
            return codes, pos
        try:
            codes.append(int(head.split(" ", 2)[1]))
        except (IndexError, ValueError):
            codes.append(0)
        pos = end + 4 + length


def _read_codes(sock, want=1, guard=15.0):
    """Status codes of up to ``want`` responses read from ``sock`` (until it closes or ``guard`` s of silence)."""
    sock.settimeout(guard)
    data, codes = b"", []
    while len(codes) < want:
        try:
            chunk = sock.recv(1 << 20)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        more, used = _responses(data)
        codes += more
        data = data[used:]
    return codes


def _tally(codes):
    return " ".join("%s×%d" % (code, count) for code, count in sorted(collections.Counter(codes).items(), key=str))


def _request(path="/api/status", method="GET", extra=""):
    return ("%s %s HTTP/1.1\r\nHost: gateway\r\n%s\r\n" % (method, path, extra)).encode()


# ------------------------------------------------------------------ HTTP

def http_slowloris(target, n):
    """``n`` rounds, one s apart, of one more header byte on each of 48 connections; a connection the server
    closed is opened again at once (a slowloris keeps its slots)."""
    conns, opened, closed_by_server = [], 0, 0
    head = b"GET /api/status HTTP/1.1\r\nHost: gateway\r\nX-Slow: "

    def fresh():
        nonlocal opened
        try:
            sock = _connect(target.ports["http"])
        except OSError:
            return None
        opened += 1
        _try_send(sock, head)
        sock.setblocking(False)
        return sock
    conns = [fresh() for _ in range(48)]
    for _ in range(n):
        time.sleep(1.0)
        for i, sock in enumerate(conns):
            alive = sock is not None
            if alive:
                try:
                    if sock.recv(4096) == b"":
                        alive = False
                except BlockingIOError:
                    pass
                except OSError:
                    alive = False
            if alive:
                try:
                    sock.send(b"a")
                except OSError:
                    alive = False
            if not alive:
                if sock is not None:
                    sock.close()
                    closed_by_server += 1
                conns[i] = fresh()
    for sock in conns:
        if sock is not None:
            _reset(sock)
    return opened, "%d connections closed by the server" % closed_by_server


def http_pipelining(target, n):
    """``n`` GET /api/status pipelined in one send on one connection; every answer read."""
    sock = _connect(target.ports["http"])
    sender = threading.Thread(target=_try_send, args=(sock, _request() * n), daemon=True)
    sender.start()
    codes = _read_codes(sock, want=n, guard=30.0)
    sock.close()
    sender.join(timeout=30)
    return n, "%d answers: %s" % (len(codes), _tally(codes))


def http_unread_bodies(target, n):
    """``n`` connections: half send a 256 KB body to an unknown path and pipeline a GET behind it, never reading
    an answer; half announce 1 MB and send 1 KB of it; all held for a while, then reset."""
    conns = []
    for i in range(n):
        try:
            sock = _connect(target.ports["http"], timeout=5.0)
        except OSError:
            continue
        if i % 2:
            data = _request("/api/nothing", "POST", "Content-Length: 262144\r\n") + b"x" * 262144 + _request()
        else:
            data = _request("/api/settings", "POST", "Content-Type: application/json\r\nContent-Length: 1048576\r\n")
            data += b"{" + b" " * 1023
        _try_send(sock, data)
        conns.append(sock)
    time.sleep(3.0)
    for sock in conns:
        _reset(sock)
    return len(conns), "%d connections held 3 s" % len(conns)


def http_huge_headers(target, n):
    """``n`` requests with 1 MB of headers (1,024 headers of 1 KB); each answer read."""
    pad = "".join("X-Pad-%d: %s\r\n" % (i, "a" * 1010) for i in range(1024))
    codes = []
    for _ in range(n):
        try:
            sock = _connect(target.ports["http"])
        except OSError:
            codes.append("refused")
            continue
        _try_send(sock, _request(extra=pad))
        codes += _read_codes(sock) or ["none"]
        sock.close()
    return n, _tally(codes)


def http_huge_bodies(target, n):
    """``n`` POSTs of a 16 MB body (alternately with Content-Length and chunked), each answer read."""
    codes = []
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    for i in range(n):
        try:
            sock = _connect(target.ports["http"])
        except OSError:
            codes.append("refused")
            continue
        if i % 2:
            head = _request("/api/settings", "POST", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n")
            body = chunk * 256 + b"0\r\n\r\n"
        else:
            head = _request("/api/settings", "POST", "Content-Type: application/json\r\nContent-Length: 16777216\r\n")
            body = b"x" * 16777216
        sender = threading.Thread(target=_try_send, args=(sock, head + body), daemon=True)
        sender.start()
        codes += _read_codes(sock) or ["none"]
        _reset(sock)
        sender.join(timeout=30)
    return n, _tally(codes)


def http_keepalive_hoard(target, n):
    """64 keep-alive connections from one address, each with one request answered, then idle, re-sending a
    request every 25 s, for ``n`` s."""
    conns, codes, sent = [], [], 0
    for _ in range(64):
        try:
            sock = _connect(target.ports["http"], timeout=5.0)
        except OSError:
            codes.append("refused")
            continue
        _try_send(sock, _request("/api/discovery"))
        sent += 1
        codes += _read_codes(sock, guard=5.0) or ["none"]
        conns.append(sock)
    end, next_round = time.monotonic() + n, time.monotonic() + 25.0
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        if time.monotonic() >= next_round:
            next_round += 25.0
            for sock in conns:
                sent += _try_send(sock, _request("/api/discovery"))
                codes += _read_codes(sock, guard=5.0) or ["none"]
    for sock in conns:
        sock.close()
    return sent, "hoarder's answers " + _tally(codes)


def http_connect_flood(target, n):
    """``n`` connections in waves of 1,000: opened at once, held until connected (or refused), then dropped
    (three in four reset, as by a client that vanished; the others closed)."""
    wave, done, connected, failed = 1000, 0, 0, 0
    while done < n:
        socks = []
        for _ in range(min(wave, n - done)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((LOCAL, target.ports["http"]))
            socks.append(sock)
        done += len(socks)
        pending = set(socks)
        end = time.monotonic() + 10.0
        while pending and time.monotonic() < end:
            poller = select.poll()
            for sock in pending:
                poller.register(sock, select.POLLOUT)
            for fd, _events in poller.poll(500):
                sock = next(s for s in pending if s.fileno() == fd)
                pending.discard(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected += 1
                else:
                    failed += 1
        for i, sock in enumerate(socks):
            if i % 4:
                _reset(sock)
            else:
                sock.close()
    return n, "%d connected, %d refused" % (connected, failed)


# ------------------------------------------------------------------ Modbus TCP

def _modbus_answer(sock):
    """One MBAP-framed answer (b"" when the server closed); ValueError when it is not well framed."""
    head = b""
    while len(head) < 7:
        chunk = sock.recv(7 - len(head))
        if not chunk:
            return b""
        head += chunk
    tid, proto, length, _unit = struct.unpack(">HHHB", head)
    if proto != 0 or not 2 <= length <= 254:
        raise ValueError("badly framed answer %r" % head)
    body = b""
    while len(body) < length - 1:
        chunk = sock.recv(length - 1 - len(body))
        if not chunk:
            raise ValueError("answer cut short")
        body += chunk
    return head + body


def modbus_mutants(target, n):
    """``n`` mutated Modbus TCP frames (most with a consistent MBAP length); every WINDOW frames a marker read
    must be answered; a frame with a wrong length ends its connection (the client closes, a new one opens)."""
    rnd, seeds = random.Random(13), wire.modbus_seeds()
    sock, connections, bad_answers, marker_tid = None, 0, 0, 0xFFFF
    i = 0
    while i < n:
        if sock is None:
            sock = _connect(target.ports["modbus"])
            connections += 1
        frame = wire.mutate(rnd, rnd.choice(seeds))
        consistent = len(frame) >= 7 and (rnd.random() < 0.95)
        if consistent:
            frame = frame[:4] + struct.pack(">H", len(frame) - 6) + frame[6:]
        i += 1
        if not _try_send(sock, frame) or not consistent:
            _reset(sock)
            sock = None
            continue
        if i % WINDOW == 0:
            _try_send(sock, wire.read_holding(marker_tid, 255, 0, 1))
            try:
                while True:
                    answer = _modbus_answer(sock)
                    if not answer or answer[:2] == b"\xff\xff":
                        break
            except ValueError:
                bad_answers += 1
            except OSError:
                pass
            else:
                if answer:
                    continue
            _reset(sock)
            sock = None
    if sock is not None:
        sock.close()
    return n, "%d connections, %d badly framed answers" % (connections, bad_answers)


def modbus_churn(target, n):
    """``n`` connections in waves of 40 (above the server's 32): a quarter each ask one read, send half a frame,
    send nothing, or are reset at once."""
    done, answered = 0, 0
    while done < n:
        socks = []
        for _ in range(min(40, n - done)):
            try:
                socks.append(_connect(target.ports["modbus"], timeout=5.0))
            except OSError:
                pass
            done += 1
        for i, sock in enumerate(socks):
            if i % 4 == 0:
                _try_send(sock, wire.read_holding(i, 255, 0, 4))
            elif i % 4 == 1:
                _try_send(sock, wire.read_holding(i, 255, 0, 4)[:5])
        for i, sock in enumerate(socks):
            if i % 4 == 0:
                try:
                    answered += bool(_modbus_answer(sock))
                except (OSError, ValueError):
                    pass
            if i % 4 == 3:
                _reset(sock)
            else:
                sock.close()
    return n, "%d reads answered" % answered


# ------------------------------------------------------------------ datagram helpers

class _Marker:
    """A checker socket whose marker question must be answered before the next WINDOW datagrams go: when its
    answer is back, the gateway has taken in everything sent before it."""

    def __init__(self, port, kind):
        self.port, self.kind, self.n = port, kind, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(2.0)
        self.lost = 0

    def sync(self, tries=3):
        for _ in range(tries):
            self.n += 1
            if self.kind == "snmp":
                rid = 0x5000000 + self.n
                self.sock.sendto(wire.snmp_message(1, "publicV2", wire.GET, rid, [wire.SYS_UPTIME]), (LOCAL, self.port))
                check = lambda data: wire.snmp_response_id(data) == rid          # noqa: E731
            else:
                invoke = self.n & 0xFF
                self.sock.sendto(wire.read_property(invoke, wire.DEVICE, 100, wire.PROP_OBJECT_NAME),
                                 (LOCAL, self.port))
                check = lambda data: wire.bacnet_answer(data) == ("complex", invoke)       # noqa: E731
            try:
                while not check(self.sock.recv(65535)):
                    pass
                return True
            except OSError:
                self.lost += 1
        return False

    def close(self):
        self.sock.close()


def _drain(sock, kinds=None):
    try:
        while True:
            data = sock.recv(65535)
            if kinds is not None:
                kinds[(wire.bacnet_answer(data) or ("bad",))[0]] += 1
    except (BlockingIOError, socket.timeout):
        pass


def _udp(nonblocking=True):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.setblocking(not nonblocking)
    return sock


def _flood(target, kind, n, make, sockets=1, kinds=None):
    """Send ``make(i)`` for i < n from ``sockets`` sockets in turn (a fresh socket — a new source port — each
    time the turn comes back when ``sockets`` > 1), a marker synchronised every WINDOW datagrams."""
    marker, port = _Marker(target.ports[kind], kind), target.ports[kind]
    pool = [_udp() for _ in range(sockets)]
    for i in range(n):
        sock = pool[i % sockets]
        sock.sendto(make(i), (LOCAL, port))
        if i % WINDOW == WINDOW - 1:
            marker.sync()
            for j, old in enumerate(pool):
                _drain(old, kinds)
                if sockets > 1:
                    old.close()
                    pool[j] = _udp()
    marker.sync()
    for sock in pool:
        _drain(sock, kinds)
        sock.close()
    marker.close()
    return marker.lost


# ------------------------------------------------------------------ SNMP

def _snmp_seeds():
    oids = [wire.SYS_UPTIME, (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 4, 1, 4555, 1)]
    return [wire.snmp_message(0, "public", wire.GET, 1, oids), wire.snmp_message(1, "publicV2", wire.GET, 7, oids),
            wire.snmp_message(1, "publicV2", wire.GETNEXT, 9, oids[:1]),
            wire.snmp_message(1, "publicV2", wire.GETBULK, 11, oids[:2], 1, 20),
            wire.snmp_message(1, "nobody", wire.SET, 12, oids[:1]),
            wire.snmp_v3_message(5, b"", flags=0x04, scoped=_scoped_get(5, []))]


def _scoped_get(request_id, oids):
    """A plaintext scoped PDU (empty context engine ID and name) carrying a GET of ``oids``."""
    varbinds = wire.seq(*(wire.seq(wire.ber_oid(oid), wire.NULL) for oid in oids))
    pdu = wire.tlv(wire.GET, wire.ber_int(request_id) + wire.ber_int(0) + wire.ber_int(0) + varbinds)
    return wire.seq(wire.ber_str(b""), wire.ber_str(b""), pdu)


def snmp_mutants(target, n):
    """``n`` mutated BER datagrams (v1, v2c GET / GETNEXT / GETBULK, a SET with a wrong community, a v3
    discovery); a marker GET answered every WINDOW datagrams."""
    rnd, seeds = random.Random(13), _snmp_seeds()
    lost = _flood(target, "snmp", n, lambda i: wire.mutate(rnd, rnd.choice(seeds)))
    return n, "%d markers unanswered" % lost


def _indefinite(tag, body):
    return bytes((tag, 0x80)) + body + b"\x00\x00"


def snmp_oversized(target, n):
    """``n`` datagrams of about 56 KB, 10 per second: 2,800 varbinds with a wrong community, the same in
    indefinite lengths, and an SNMPv3 message with a 56 KB scoped PDU."""
    oids = [(1, 3, 6, 1, 2, 1, 1, 1 + i % 9, i) for i in range(2800)]
    wrong = wire.snmp_message(1, "wrong", wire.GET, 77, oids)
    varbinds = b"".join(_indefinite(0x30, wire.ber_oid(oid) + wire.NULL) for oid in oids)
    indefinite = _indefinite(0x30, wire.ber_int(1) + wire.ber_str("wrong") + _indefinite(
        wire.GET, wire.ber_int(78) + wire.ber_int(0) + wire.ber_int(0) + _indefinite(0x30, varbinds)))
    v3 = wire.snmp_v3_message(80, b"user", b"\x80\x00\x00\x00\x01", flags=0x04, scoped=_scoped_get(79, oids))
    kinds = [wrong, indefinite, v3]
    sock = _udp()
    for i in range(n):
        sock.sendto(kinds[i % 3], (LOCAL, target.ports["snmp"]))
        time.sleep(0.1)
        _drain(sock)
    marker = _Marker(target.ports["snmp"], "snmp")
    answered = marker.sync(tries=10)
    marker.close()
    sock.close()
    return n, "%d-%d bytes each; marker %s" % (min(map(len, kinds)), max(map(len, kinds)),
                                               "answered" if answered else "unanswered")


def snmp_v3_random(target, n):
    """``n`` SNMPv3 authPriv messages with random user names, an empty engine ID and 64 random bytes as the
    encrypted scoped PDU (pysnmp kept a reference per datagram)."""
    rnd = random.Random(13)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def make(i):
        user = "".join(rnd.choice(letters) for _ in range(rnd.randint(4, 16))).encode()
        encrypted = bytes(rnd.randrange(256) for _ in range(64))
        return wire.snmp_v3_message(rnd.randrange(1 << 31), user, b"", 0x07, encrypted,
                                    priv=bytes(rnd.randrange(256) for _ in range(8)))
    lost = _flood(target, "snmp", n, make)
    return n, "%d markers unanswered" % lost


# ------------------------------------------------------------------ BACnet

def _bacnet_seeds(target):
    mac, ais = target.bacnet_meter
    return [wire.read_property(1, wire.DEVICE, 100, wire.PROP_OBJECT_NAME),
            wire.read_property(2, wire.ANALOG_INPUT, ais[0], wire.PROP_PRESENT_VALUE, dnet=1000, mac=mac),
            wire.read_property_multiple(3, [(wire.ANALOG_INPUT, a) for a in ais[:3]], wire.PROP_PRESENT_VALUE,
                                        1000, mac),
            wire.read_property(4, wire.DEVICE, 100, wire.PROP_OBJECT_LIST), wire.who_is(),
            wire.bvlc(wire.npdu(b"\x10\x07\x3d\x04\x00M-7", expecting_reply=False)),               # Who-Has
            wire.bvlc(b"\x01\x80\x00")]                                           # Who-Is-Router-To-Network


def bacnet_mutants(target, n):
    """``n`` mutated BVLC / NPDU / APDU datagrams (RP, routed RP and RPM, Who-Is, Who-Has, a network message);
    a marker ReadProperty answered every WINDOW datagrams."""
    rnd, seeds = random.Random(13), _bacnet_seeds(target)
    kinds = collections.Counter()
    lost = _flood(target, "bacnet", n, lambda i: wire.mutate(rnd, rnd.choice(seeds), (2, 2, 0)), kinds=kinds)
    return n, "%d markers unanswered; answers %s" % (lost, _tally(kinds.elements()))


def bacnet_whois_flood(target, n):
    """``n`` Who-Is, each WINDOW from a fresh source port."""
    kinds = collections.Counter()
    lost = _flood(target, "bacnet", n, lambda i: wire.who_is(), sockets=WINDOW, kinds=kinds)
    return n, "%d markers unanswered; answers %s" % (lost, _tally(kinds.elements()))


def bacnet_rpm_flood(target, n):
    """``n`` ReadPropertyMultiple of ALL properties of up to 120 Analog Inputs of the richest meter, from fresh
    source ports, 16 in flight; the answers to each 16 awaited (5 s guard)."""
    mac, ais = target.bacnet_meter
    frames = [wire.read_property_multiple(i, [(wire.ANALOG_INPUT, a) for a in ais[:120]], wire.PROP_ALL, 1000, mac)
              for i in range(256)]
    kinds, sent = collections.Counter(), 0
    while sent < n:
        socks = [_udp(nonblocking=False) for _ in range(min(16, n - sent))]
        for sock in socks:
            sock.sendto(frames[sent % 256], (LOCAL, target.ports["bacnet"]))
            sent += 1
        end = time.monotonic() + 5.0
        for sock in socks:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                kinds[(wire.bacnet_answer(sock.recv(65535)) or ("bad",))[0]] += 1
            except OSError:
                kinds["none"] += 1
            sock.close()
    return n, "%d AIs each, %d-byte requests; answers %s" % (len(ais[:120]), len(frames[0]), _tally(kinds.elements()))


ABSURD_DATES = [(2154, 6, 1, 1, 12, 0, 0), (1901, 1, 1, 2, 0, 0, 0), (2026, 2, 30, 3, 12, 0, 0),
                (2026, 13, 1, 4, 12, 0, 0), (2026, 1, 1, 5, 99, 99, 99), (2026, 1, 0, 9, 25, 61, 61)]


def bacnet_timesync(target, n):
    """``n`` (UTC)TimeSynchronization of absurd dates (year 2154, 1901, 30 February, month 13, 99:99:99, day 0);
    then a correct UTC time synchronisation puts the clock back. The note says what the gateway's clock showed."""
    shown = collections.Counter()
    for i in range(n):
        year, month, day, weekday, hour, minute, second = ABSURD_DATES[i % len(ABSURD_DATES)]
        frame = wire.time_sync(year, month, day, weekday, hour, minute, second, utc=bool(i % 2))
        _flood(target, "bacnet", 1, lambda _i: frame)
        shown[year, _year(target)] += 1
    now = time.gmtime()
    _flood(target, "bacnet", 1, lambda i: wire.time_sync(now.tm_year, now.tm_mon, now.tm_mday, now.tm_wday + 1,
                                                          now.tm_hour, now.tm_min, now.tm_sec, utc=True))
    applied = sum(k for (sent, seen), k in shown.items() if sent == seen and sent in (1901, 2154))
    return n, "clock's year after a sync to (year sent: year shown): %s; after a correct one: %s" % (
        ", ".join("%s:%s×%d" % (sent, seen, k) for (sent, seen), k in sorted(shown.items(), key=str)),
        _year(target)), applied


def _year(target):
    """The year of the gateway's clock (/api/status gateway.time, seconds since the epoch), or "?"."""
    when = target.status().get("gateway", {}).get("time")
    try:
        return time.gmtime(when).tm_year
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


# ------------------------------------------------------------------ detections and restarts

# The demo's Admin logs in with the manual's default password once, which forces a change to this one.
ADMIN_DEFAULT, ADMIN_PASSWORD = "Admin", "Soak-bench-2026!"


def _call(target, path, body, headers=None):
    """POST a JSON body; (status, decoded answer or {}, response headers)."""
    request = urllib.request.Request("http://%s:%d%s" % (LOCAL, target.ports["http"], path),
                                     data=json.dumps(body).encode(),
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, data, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, data, got = exc.code, exc.read(), exc.headers
    try:
        return status, json.loads(data), got
    except ValueError:
        return status, {}, got


def _admin_session(target):
    """Headers of an Admin session (cookie and CSRF token), logged in as a script does (docs/status-api.md)."""
    def login(password):
        status, answer, got = _call(target, "/api/login", {"profile": "admin", "password": password})
        cookie = (got.get("Set-Cookie") or "").split(";")[0]
        return status, answer, {"Cookie": cookie, "X-CSRF-Token": answer.get("csrf", "")}
    status, answer, headers = login(ADMIN_PASSWORD)
    if status != 200:
        status, answer, headers = login(ADMIN_DEFAULT)
    if status == 200 and answer.get("must_change"):
        status, answer, got = _call(target, "/api/password", {"current": ADMIN_DEFAULT, "new": ADMIN_PASSWORD},
                                    headers)
        cookie = (got.get("Set-Cookie") or "").split(";")[0] or headers["Cookie"]
        headers = {"Cookie": cookie, "X-CSRF-Token": answer.get("csrf", headers["X-CSRF-Token"])}
    return headers


def _post(target, path, body):
    """POST as Admin (a new session each time: the daemon may have been restarted); the answer's status."""
    return _call(target, path, body, _admin_session(target))[0]


def _discovery(target):
    with urllib.request.urlopen("http://%s:%d/api/discovery" % (LOCAL, target.ports["http"]), timeout=30) as answer:
        return json.loads(answer.read())


def _wait(predicate, guard):
    end = time.monotonic() + guard
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    return False


def detections(target, n):
    """``n`` FULL detections back to back (POST /api/discovery), each awaited to its end."""
    codes, found = [], []
    for _ in range(n):
        codes.append(_post(target, "/api/discovery", {"mode": "full"}))
        _wait(lambda: _discovery(target)["state"] not in ("running", "idle"), guard=180)
        found.append(_discovery(target).get("found"))
    return n, "answers %s; found %s" % (_tally(codes), ",".join(map(str, found)))


def kill_restart(target, n):
    """``n`` kill -9 and restart cycles, every other one during a FULL detection; each restart awaited until
    the meters poll again."""
    notes = []
    for i in range(n):
        if i % 2 == 0:
            _post(target, "/api/discovery", {"mode": "full"})
            _wait(lambda: _discovery(target).get("progress", 0) > 0.2, guard=60)
        target.kill()
        target.start()
        notes.append(str(len(target.status().get("devices", []))))
    return n, "devices after each restart: %s" % ",".join(notes)
