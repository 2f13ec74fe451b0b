"""Registers that never change while a meter is in the topology, kept so pass-through reads of them
cost no frame on the wire.

A Socomec product's identification block (0xC350, 66 words: "SOCO", family, product id, table and
software versions, serial number, build, vendor and product names) and, on the B-30 / Digiware
generation, the resource version and NET ID after it (0xC392, 3 words) are fixed by the device
itself (socomec-registers §1). A holding-register read forwarded to them teaches their words here;
a later read that they cover is answered from these words. The words are the meter's own answer,
never ours: what was not read is not known, so a read of a word never read is forwarded. They are
forgotten when the device at that address is another one (a different uid or reference) and never
kept for a generic device (its registers are its own business) or another function than 3.
"""

from core import catalogue, modbus_rtu as rtu


def static_ranges(device):
    """[(start, count)] of the registers of ``device`` that are fixed while it is in the topology."""
    if device.model is not None:
        return []
    try:
        netid = catalogue.has_netid(device.reference)
    except KeyError:                      # not a catalogue product
        return []
    if netid:      # the NET ID words follow the block: one range, so a read of all 69 words is one too
        return [(catalogue.IDENT_BASE, catalogue.IDENT_NETID_BASE + catalogue.IDENT_NETID_WORDS - catalogue.IDENT_BASE)]
    return [(catalogue.IDENT_BASE, catalogue.IDENT_WORDS)]


def _inside(ranges, start, count):
    return any(base <= start and start + count <= base + words for base, words in ranges)


class StaticBlocks:
    """The static words learnt per address, each set tied to the device (uid, reference) it came from."""

    def __init__(self):
        self._known = {}          # address -> ((uid, reference), {register: word})

    def _words(self, device):
        entry = self._known.get(device.address)
        if entry is None or entry[0] != (device.uid, device.reference):
            return None
        return entry[1]

    def read(self, device, function, start, count):
        """The words of a read wholly inside a static block and wholly learnt already, else None."""
        if function != rtu.READ_HOLDING or not _inside(static_ranges(device), start, count):
            return None
        words = self._words(device)
        if words is None:
            return None
        try:
            return [words[r] for r in range(start, start + count)]
        except KeyError:
            return None

    def learn(self, device, request, response):
        """Keep the words of a forwarded read's answer (request and response PDUs) inside a static block."""
        if len(request) != 5 or request[0] != rtu.READ_HOLDING:
            return
        _function, start, count, _w = rtu.request_fields(request)
        if not _inside(static_ranges(device), start, count):
            return
        values = rtu.read_registers_from_pdu(response)
        if len(values) != count:
            return
        words = self._words(device)
        if words is None:
            words = {}
            self._known[device.address] = ((device.uid, device.reference), words)
        words.update(zip(range(start, start + count), values, strict=True))

    def forget(self, address):
        self._known.pop(address, None)
