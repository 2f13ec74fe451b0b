"""What every BLE radio hands the daemon: one advertisement as a plain dict (board interface, issue 18).

``{"address": "A4:C1:38:8D:18:B2", "name": str or "", "rssi": dBm or None, "service_data": {uuid: bytes},
"manufacturer_data": {company id: bytes}}``; a service UUID of the Bluetooth base range is its 16-bit number
(0xFCD2), any other UUID stays its lower-case text. The Pi's radio is bleak's scanner (``BleakRadio``: bleak is
imported when a scan starts, so a gateway without Bluetooth never loads it); the simulated board has its own
(board/simble.py).
"""

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def short_uuid(uuid):
    """0xFCD2 for "0000fcd2-0000-1000-8000-00805f9b34fb" (or 0xFCD2 itself); any other UUID as lower-case text."""
    if isinstance(uuid, int):
        return uuid
    text = str(uuid).lower()
    if len(text) == 36 and text.startswith("0000") and text.endswith(BASE_UUID_TAIL):
        try:
            return int(text[4:8], 16)
        except ValueError:
            return text
    return text


def advertisement(address, name, rssi, service_data, manufacturer_data):
    return {"address": str(address).upper(), "name": name or "", "rssi": rssi,
            "service_data": dict((short_uuid(k), bytes(v)) for k, v in (service_data or {}).items()),
            "manufacturer_data": dict((int(k), bytes(v)) for k, v in (manufacturer_data or {}).items())}


def from_bleak(device, data):
    """The dict of one bleak detection (``BLEDevice``, ``AdvertisementData``)."""
    return advertisement(device.address, data.local_name or getattr(device, "name", None), data.rssi,
                         data.service_data, data.manufacturer_data)


class BleakRadio:
    """The host's Bluetooth adapter through bleak's ``BleakScanner`` (active scanning: BlueZ's passive mode needs
    advertisement patterns we do not know in advance)."""

    def __init__(self, adapter=None):
        self.adapter = adapter           # "hci0"; None: bleak's default
        self._scanner = None

    async def start(self, callback):
        import bleak                     # lazily: only a scan loads it (and D-Bus)
        kwargs = {"bluez": {"adapter": self.adapter}} if self.adapter else {}
        scanner = bleak.BleakScanner(detection_callback=lambda device, data: callback(from_bleak(device, data)),
                                     **kwargs)
        await scanner.start()
        self._scanner = scanner

    async def stop(self):
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            await scanner.stop()
