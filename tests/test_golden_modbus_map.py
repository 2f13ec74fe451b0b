"""Golden Modbus register map of the gateway: the documented rows, as literals, and what a client reads.

docs/modbus-register-map.md is the contract integrators program their
SCADA from. Its gateway table (0x0000-0x0023) and a few rows of the
normalized per-meter table are written out here by hand; the generator
(protocols/modbus/regmap.py, ``python -m tools.regmap``), the committed
document and the running gateway (read with pymodbus, decoded with the
literal layout, not with our tables) must all agree with them.
"""

import asyncio
import contextlib
import csv
import io
import os
import struct

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from board.base import ManualClock
from conftest import REPO, DemoSite, wait_for
from daemon.version import VERSION
from protocols.modbus import regmap
from protocols.modbus.tcp import ModbusTcpService
from tools import regmap as regmap_tool

T0 = 1_700_000_000.0                  # 2023-11-14 22:13:20 UTC
T0_SOCOMEC = 753_315_200              # the same instant in seconds since 2000-01-01 00:00:00 UTC

HEADER = ("table", "unit_id", "register_hex", "register", "words", "type", "scale", "unit", "name", "description")
GATEWAY_ROWS = (
    ("gateway", "gateway address", "0x0000", "0", "8", "string", "", "", "vendor",
     "Vendor name (2 ASCII characters per register)"),
    ("gateway", "gateway address", "0x0008", "8", "8", "string", "", "", "product", "Product name"),
    ("gateway", "gateway address", "0x0010", "16", "8", "string", "", "", "firmware", "Software version"),
    ("gateway", "gateway address", "0x0018", "24", "2", "u32", "", "", "netid", "Gateway NET ID (24 bits)"),
    ("gateway", "gateway address", "0x001A", "26", "1", "u16", "", "", "modbus_address", "Gateway Modbus address"),
    ("gateway", "gateway address", "0x001B", "27", "1", "u16", "", "", "status",
     "Status bits: 0 running, 1 a system alarm is active, 2 detection running"),
    ("gateway", "gateway address", "0x001C", "28", "2", "u32", "", "", "alarms",
     "Active system alarms: bit n-1 = system alarm n (SPEC §6)"),
    ("gateway", "gateway address", "0x001E", "30", "2", "u32", "", "", "heartbeat",
     "Heartbeat: seconds since start, watch it change"),
    ("gateway", "gateway address", "0x0020", "32", "1", "u16", "", "", "devices", "Devices in the topology"),
    ("gateway", "gateway address", "0x0021", "33", "1", "u16", "", "", "lost", "Devices not answering"),
    ("gateway", "gateway address", "0x0022", "34", "2", "u32", "", "", "time",
     "Gateway time, seconds since 2000-01-01 UTC"),
)
NORMALIZED_ROWS = (
    ("normalized", "meter address", "0x1008", "4104", "2", "u32", "x100", "V", "v1",
     "Voltage V1 (load L at +200×L)"),
    ("normalized", "meter address", "0x1016", "4118", "2", "u32", "x1000", "A", "i1",
     "Current I1 (load L at +200×L)"),
    ("normalized", "meter address", "0x102A", "4138", "2", "s32", "", "W", "p",
     "Total active power P (load L at +200×L)"),
    ("normalized", "meter address", "0x1070", "4208", "4", "u64", "", "Wh", "ea_pos",
     "Active energy imported Ea+ (load L at +200×L)"),
    ("normalized", "meter address", "0x10C6", "4294", "1", "u16", "", "", "quality",
     "Worst quality of the load: 0 good, 1 stale, 2 comm_lost, 3 not_supported (load L at +200×L)"),
)


def markdown_rows(text):
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| table ") and "---" not in line:
            rows.append(tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")))
    return rows


def test_generated_rows_are_the_documented_ones():
    generated = [tuple(str(c) for c in row) for row in regmap.rows()]
    gateway = [row for row in generated if row[0] == "gateway" and int(row[3]) < 0x0100]
    assert gateway == list(GATEWAY_ROWS)
    for row in NORMALIZED_ROWS:
        assert row in generated, "normalized row missing or different: %s" % (row,)


def test_csv_and_the_committed_document_carry_the_same_rows():
    table = list(csv.reader(io.StringIO(regmap.as_csv())))
    assert tuple(table[0]) == HEADER
    for row in GATEWAY_ROWS + NORMALIZED_ROWS:
        assert tuple(row) in [tuple(r) for r in table[1:]], row
    with open(os.path.join(REPO, "docs", "modbus-register-map.md"), encoding="utf-8") as handle:
        documented = markdown_rows(handle.read())
    for row in GATEWAY_ROWS + NORMALIZED_ROWS:
        assert row in documented, "docs/modbus-register-map.md lacks or changed: %s" % (row,)
    assert markdown_rows(regmap.as_markdown()) == documented


def test_the_tool_writes_the_same_csv(capsys):
    assert regmap_tool.main(["--format", "csv"]) == 0
    table = [tuple(r) for r in csv.reader(io.StringIO(capsys.readouterr().out))]
    assert table[0] == HEADER
    for row in GATEWAY_ROWS + NORMALIZED_ROWS:
        assert row in table, row


def string_of(words):
    """A STRING field of the map: 2 ASCII characters per register, first in the high byte, NUL padded."""
    return struct.pack(">%dH" % len(words), *words).rstrip(b"\x00").decode("ascii")


def u32(words):
    return (words[0] << 16) | words[1]


class Setup(DemoSite):
    """The demo site with Modbus TCP on loopback port 0: the service binds a free port and reports it."""

    def __init__(self, tmp_path, clock):
        super().__init__(tmp_path, ModbusTcpService, {"modbus.port": 0, "modbus.bind": "127.0.0.1"}, None, clock)

    async def ready(self, stack):
        await wait_for(lambda: self.service.running)

    @property
    def port(self):
        return self.service.status()["port"]

    @contextlib.asynccontextmanager
    async def client(self):
        client = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=5, retries=0)
        try:
            assert await client.connect()
            yield client
        finally:
            client.close()


def test_a_client_reads_the_documented_layout(tmp_path):
    async def scenario():
        async with Setup(tmp_path, ManualClock(T0)) as s:
            async with s.client() as client:
                for unit in (255, 1):            # 255 over TCP, and gateway.modbus_address (default 1)
                    rr = await client.read_holding_registers(0x0000, count=0x24, device_id=unit)
                    assert not rr.isError(), rr
                    words = rr.registers
                    assert string_of(words[0x00:0x08]) == "OPEN-M70"
                    assert string_of(words[0x08:0x10]) == "M-70"
                    assert string_of(words[0x10:0x18]) == VERSION
                    assert u32(words[0x18:0x1A]) == int(s.gw.identity["netid"], 16) <= 0xFFFFFF
                    assert words[0x1A] == 1
                    assert words[0x1B] & 1 == 1                          # running
                    assert u32(words[0x1C:0x1E]) == 0                    # no system alarm on the commissioned demo site
                    assert words[0x20] == 8 and words[0x21] == 0         # 8 devices, none lost
                    assert u32(words[0x22:0x24]) == T0_SOCOMEC
                # the gateway table ends at 0x0023: one more register is an illegal address (02)
                rr = await client.read_holding_registers(0x0000, count=0x25, device_id=255)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x02

                # the normalized table of the I-35 at address 5, load 3: register + 200 x 3
                meter = s.gw.board.find_meter(address=5)
                now = meter.values(3)
                rr = await client.read_holding_registers(0x1008 + 600, count=2, device_id=5)
                assert u32(rr.registers) == round(now["v1"] * 100)
                rr = await client.read_holding_registers(0x1016 + 600, count=2, device_id=5)
                assert u32(rr.registers) == round(now["i1"] * 1000) > 0
                rr = await client.read_holding_registers(0x102A + 600, count=2, device_id=5)
                assert struct.unpack(">i", struct.pack(">HH", *rr.registers))[0] == round(now["p"])
                rr = await client.read_holding_registers(0x10C6 + 600, count=1, device_id=5)
                assert rr.registers == [0]                               # good
    asyncio.run(scenario())
