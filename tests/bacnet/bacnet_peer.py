"""Test-side BACnet peers: the Node.js client (@bacnet-js/client) and raw UDP frames.

Both are independent of bacpypes3 (which the server uses): ``NodeBacnet``
drives ``client.mjs`` over JSON lines; ``frame_*`` build frames by hand from
ASHRAE 135 (BVLC Annex J, NPDU clause 6, APDU clause 20) and ``parse_answer``
reads what comes back.
"""

import asyncio
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "client.mjs")
MODULES = os.path.join(HERE, "node_modules", "@bacnet-js", "client")

# object types / properties used by the tests (ASHRAE 135 enumerations)
ANALOG_INPUT, BINARY_INPUT, BINARY_OUTPUT, DEVICE = 0, 3, 4, 8
PROP = {"object_name": 77, "present_value": 85, "units": 117, "status_flags": 111, "reliability": 103,
        "object_list": 76, "description": 28, "location": 58, "all": 8, "required": 105, "optional": 80,
        "property_list": 371, "priority_array": 87, "utc_offset": 119, "serial_number": 372,
        "min_pres_value": 69, "max_pres_value": 65, "average_value": 125}
BINARY_PV_TAG = 9          # enumerated application tag
NULL_TAG = 0


class BacnetError(Exception):
    pass


class NodeBacnet:
    """One long-lived node process running client.mjs on loopback UDP ``port`` (a free one: the
    library cannot bind port 0); ``call`` sends a request, awaits its answer. ``host``: the loopback address it
    binds (127.0.0.2... are other hosts to the gateway)."""

    def __init__(self, port, host="127.0.0.1"):
        self.port, self.host = port, host
        self.proc = None
        self._ids = 0

    async def start(self):
        assert shutil.which("node"), "node is missing: run `make test` (Debian packages nodejs npm)"
        assert os.path.isdir(MODULES), "@bacnet-js/client is missing: run `npm ci --prefix tests/bacnet`"
        self.proc = await asyncio.create_subprocess_exec(
            "node", CLIENT, str(self.port), self.host, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=dict(os.environ, TZ="UTC"), limit=2 ** 22)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert json.loads(line) == {"ready": True}, line
        return self

    async def call(self, op, **request):
        self._ids += 1
        request.update(op=op, id=self._ids)
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        answer = json.loads(line)
        assert answer["id"] == self._ids
        if not answer["ok"]:
            raise BacnetError(answer["error"])
        return answer["result"]

    async def close(self):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.write(b'{"op": "quit"}\n')
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()


def values_of(rp_result):
    return [v["value"] for v in rp_result["values"]]


def rpm_values(rpm_result):
    """{(type, instance): {property id: [values] or ("error", raw)}} of a decoded RPM answer."""
    out = {}
    for entry in rpm_result["values"]:
        oid = (entry["objectId"]["type"], entry["objectId"]["instance"])
        props = out.setdefault(oid, {})
        for item in entry["values"]:
            values = item["value"]
            if isinstance(values, list) and all(isinstance(v, dict) and "value" in v for v in values):
                props[item["id"]] = [v["value"] for v in values]
            else:
                props[item["id"]] = ("error", values)
    return out


# ------------------------------------------------------------------ raw frames
def bvlc(npdu, function=0x0A):
    return struct.pack(">BBH", 0x81, function, 4 + len(npdu)) + npdu


def npdu(apdu, dnet=None, dadr=b"", expecting_reply=True, network_message=None):
    control = (0x04 if expecting_reply else 0) | (0x20 if dnet is not None else 0)
    if network_message is not None:
        control |= 0x80
    out = bytes((0x01, control))
    if dnet is not None:
        out += struct.pack(">HB", dnet, len(dadr)) + dadr + b"\xff"
    if network_message is not None:
        out += bytes((network_message,))
    return out + apdu


def object_id(obj_type, instance):
    return struct.pack(">I", obj_type << 22 | instance)


def read_property_apdu(invoke, obj_type, instance, prop, service=0x0C):
    prop_bytes = b"\x19" + bytes((prop,)) if prop < 256 else b"\x1a" + struct.pack(">H", prop)
    return bytes((0x00, 0x05, invoke, service)) + b"\x0c" + object_id(obj_type, instance) + prop_bytes


def frame_read_property(invoke, obj_type, instance, prop, dnet=None, mac=None):
    return bvlc(npdu(read_property_apdu(invoke, obj_type, instance, prop), dnet,
                     bytes((mac,)) if mac is not None else b""))


def rpm_apdu(invoke, specs, max_resp=5, max_segs=None):
    """ReadPropertyMultiple (service 14): ``specs`` = [(type, instance, [property ids])]. ``max_resp`` is the
    clause 20.1.2.5 code (0 = 50 octets ... 5 = 1476); ``max_segs`` the 20.1.2.4 code of the segments the
    client accepts (None: segmented response not accepted)."""
    head = bytes((0x02 if max_segs is not None else 0x00, (max_segs or 0) << 4 | max_resp, invoke, 0x0E))
    body = b""
    for obj_type, instance, props in specs:
        refs = b"".join(b"\x09" + bytes((p,)) if p < 256 else b"\x0a" + struct.pack(">H", p) for p in props)
        body += b"\x0c" + object_id(obj_type, instance) + b"\x1e" + refs + b"\x1f"
    return head + body


def time_synchronization_apdu(date, time, utc=True):
    """(UTC)TimeSynchronization (unconfirmed service 9 or 6) with raw fields: ``date`` = (year - 1900, month,
    day, weekday), ``time`` = (hour, minute, second, hundredths); any octet, 255 = unspecified."""
    return bytes((0x10, 9 if utc else 6, 0xA4)) + bytes(date) + b"\xb4" + bytes(time)


def frame_who_is(low=None, high=None, dnet=0xFFFF):
    apdu = b"\x10\x08"
    if low is not None:
        apdu += b"\x0a" + struct.pack(">H", low) + b"\x1a" + struct.pack(">H", high)
    return bvlc(npdu(apdu, dnet, b"", expecting_reply=False), function=0x0B)


def parse_answer(data):
    """(kind, details) of a BACnet answer: kind in ack / complex / error / reject / abort / iam / net."""
    assert data[0] == 0x81 and struct.unpack(">H", data[2:4])[0] == len(data)
    p = 4
    assert data[p] == 0x01
    control = data[p + 1]
    p += 2
    source = None
    if control & 0x20:
        dlen = data[p + 2]
        p += 3 + dlen
    if control & 0x08:
        snet = struct.unpack(">H", data[p:p + 2])[0]
        slen = data[p + 2]
        source = (snet, bytes(data[p + 3:p + 3 + slen]))
        p += 3 + slen
    if control & 0x20:
        p += 1
    if control & 0x80:
        return "net", {"type": data[p], "body": bytes(data[p + 1:]), "source": source}
    kind = data[p] >> 4
    if kind == 1 and data[p + 1] == 0:
        device = struct.unpack(">I", data[p + 3:p + 7])[0] & 0x3FFFFF
        return "iam", {"device": device, "source": source}
    if kind == 2:
        return "ack", {"invoke": data[p + 1], "service": data[p + 2], "source": source}
    if kind == 3:
        return "complex", {"invoke": data[p + 1], "service": data[p + 2], "body": bytes(data[p + 3:]),
                           "source": source}
    if kind == 5:
        body = data[p + 3:]
        error_class, error_code = body[1], body[3]           # two 1-byte enumerations (0x91 xx 0x91 yy)
        return "error", {"invoke": data[p + 1], "class": error_class, "code": error_code, "source": source}
    if kind == 6:
        return "reject", {"invoke": data[p + 1], "reason": data[p + 2], "source": source}
    if kind == 7:
        return "abort", {"invoke": data[p + 1], "reason": data[p + 2], "source": source}
    return "other", {"apdu": bytes(data[p:]), "source": source}


class RawUdp(asyncio.DatagramProtocol):
    """A loopback UDP socket, open inside ``async with``; answers land in a queue. ``host``: its address
    (127.0.0.2, 127.0.0.3... are other hosts on loopback: Linux routes all of 127/8 to lo)."""

    def __init__(self, host="127.0.0.1"):
        self.answers = asyncio.Queue()
        self.transport = None
        self.host = host

    async def __aenter__(self):
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, local_addr=(self.host, 0))
        return self

    @property
    def address(self):
        """(host, port) the gateway sees this socket as."""
        return self.transport.get_extra_info("sockname")

    async def __aexit__(self, *exc):
        self.transport.close()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.answers.put_nowait(data)

    def send(self, data, port):
        self.transport.sendto(data, ("127.0.0.1", port))

    async def answer(self, timeout=5.0):
        return parse_answer(await asyncio.wait_for(self.answers.get(), timeout))

    async def collect(self, seconds):
        """Every answer that arrives within ``seconds``."""
        out = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            left = end - loop.time()
            if left <= 0:
                return out
            try:
                out.append(parse_answer(await asyncio.wait_for(self.answers.get(), left)))
            except asyncio.TimeoutError:
                return out

    def drain(self):
        while not self.answers.empty():
            self.answers.get_nowait()
