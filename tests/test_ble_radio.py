"""The radio behind the board interface (issue 18): bleak's scanner on the Pi, the simulated radio.

- bleak is imported only when a scan starts (a gateway without Bluetooth never loads it nor D-Bus);
- a detection of bleak (its own ``BLEDevice`` and ``AdvertisementData``) becomes the board's advertisement dict,
  128-bit UUIDs of the Bluetooth base range shortened to their 16-bit number (Bluetooth Core, Assigned Numbers);
- the simulated radio counts its starts and stops and advertises only while a scan runs.
"""

import asyncio
import subprocess
import sys
import types

from board import bleradio
from board.simble import SimRadio

REPO = __file__.rsplit("/tests/", 1)[0]


def test_bleak_is_not_imported_by_the_board():
    code = "import board.rpi, sys; board.rpi.RpiBoard().ble_scanner(); print('bleak' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_bleak_detection_becomes_an_advertisement():
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData
    device = BLEDevice("a4:c1:38:8d:18:b2", "ATC_8D18B2", None)
    data = AdvertisementData(local_name="ATC_8D18B2", manufacturer_data={0x0499: b"\x05\x12"},
                             service_data={"0000181a-0000-1000-8000-00805f9b34fb": b"\x01\x02",
                                           "6e400001-b5a3-f393-e0a9-e50e24dcca9e": b"\x03"},
                             service_uuids=[], tx_power=None, rssi=-62, platform_data=())
    assert bleradio.from_bleak(device, data) == {
        "address": "A4:C1:38:8D:18:B2", "name": "ATC_8D18B2", "rssi": -62,
        "service_data": {0x181A: b"\x01\x02", "6e400001-b5a3-f393-e0a9-e50e24dcca9e": b"\x03"},
        "manufacturer_data": {0x0499: b"\x05\x12"}}


def test_bleak_radio_starts_and_stops_bleaks_scanner(monkeypatch):
    calls = []

    class FakeScanner:
        def __init__(self, detection_callback=None, **kwargs):
            calls.append(("new", kwargs))
            self.callback = detection_callback

        async def start(self):
            calls.append("start")
            device = types.SimpleNamespace(address="54:48:e6:8f:80:a5", name=None)
            data = types.SimpleNamespace(local_name="DIY-sensor", rssi=-71, manufacturer_data={},
                                         service_data={"0000fcd2-0000-1000-8000-00805f9b34fb": b"\x40\x01\x61"})
            self.callback(device, data)

        async def stop(self):
            calls.append("stop")

    monkeypatch.setitem(sys.modules, "bleak", types.SimpleNamespace(BleakScanner=FakeScanner))
    got = []
    radio = bleradio.BleakRadio("hci1")

    async def run():
        await radio.start(got.append)
        await radio.stop()
        await radio.stop()             # twice: nothing more
    asyncio.run(run())
    assert calls == [("new", {"bluez": {"adapter": "hci1"}}), "start", "stop"]
    assert got == [{"address": "54:48:E6:8F:80:A5", "name": "DIY-sensor", "rssi": -71,
                    "service_data": {0xFCD2: b"\x40\x01\x61"}, "manufacturer_data": {}}]


def test_the_simulated_radio_advertises_only_while_scanning():
    radio = SimRadio([{"address": "A4:C1:38:00:00:01", "format": "pvvx", "period_s": 0.05},
                      {"address": "A4:C1:38:00:00:02", "format": "bthome", "period_s": 0.05, "silent": True}])
    got = []

    async def run():
        assert radio.emit("A4:C1:38:00:00:01") is False
        await radio.start(got.append)
        while len(got) < 3:
            await asyncio.sleep(0.01)
        await radio.stop()
        count = len(got)
        await asyncio.sleep(0.2)
        return count
    count = asyncio.run(run())
    assert (radio.starts, radio.stops, radio.scanning) == (1, 1, False)
    assert len(got) == count and {a["address"] for a in got} == {"A4:C1:38:00:00:01"}   # the silent one says nothing
    assert [a["service_data"][0x181A][13] for a in got[:3]] == [1, 2, 3]                # its packet counter


def test_a_bad_simulated_sensor_is_refused():
    for spec in ({"address": "A4:C1:38:00:00:01", "format": "ibeacon"}, {"address": "nope", "format": "pvvx"}, 7):
        try:
            SimRadio([spec])
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (spec,))
