"""Auto-detection of the devices on both buses (SPEC §1), FAST and FULL.

Each address of the scan range is asked for the identification block
(0xC350, "SOCO"...): the 66 words every family has (a COUNTIS or a DIRIS A
answers exception 02 to a read past them). Only a product whose table
carries a NET ID (B-30 / Digiware generation, ``catalogue.has_netid``) is
then asked for it, at 0xC392 (resource version + NET ID); a device without
one has no NET ID ("") and is keyed by reference + serial number
(``Device.uid``). FAST keeps the devices the catalogue marks as
FAST-detectable (Digiware modules, DIRIS B, DIRIS A-40); FULL keeps every
known product, so it also finds the other DIRIS A and COUNTIS E on the
RS485 port, and gives slower devices a longer answer time.

Two devices on one address answer at once and their frames collide (a CRC
error, or garbage). That raises system alarm 4; automatic resolution then
finds each device's NET ID by bisection ([ours], docs/architecture.md):
a broadcast filter mutes the devices at that address whose NET ID is outside
a range, a read tells whether none, one or several remain, and the range is
halved until each device answers alone. Every device but the first is then
given a free address by a broadcast addressed by NET ID. A device without a
NET ID cannot be moved that way: it keeps the address and every device with
a NET ID there is moved; two devices without one stay in conflict (alarm 4
stays raised: the per-module push-button resolution is theirs).

The result is merged into the topology (``topology.merge_detected``): new
devices are added, known ones updated with their names and areas kept, and
a device not found is kept and flagged ``not_found`` unless the detection
was started to *synchronise* (``remove_missing``). FAST looks only for the
FAST-detectable products, but a known device of another product that answers
is found all the same.
"""

import asyncio
import logging

from core import catalogue, modbus_rtu as rtu
from daemon.runtime.bus import DISCOVERY, BusGarbled, BusTimeout
from daemon.state.alarms import device_source
from daemon.state.settings import check_value
from daemon.state.topology import Device, TopologyRefused, merge_detected
from daemon.supervise import cancel_and_wait

log = logging.getLogger("gateway.discovery")

ALARM_CONFLICT = 4
RESOLVE_ATTEMPTS = 3            # identification of a device just moved by its NET ID (see _identify_known)
FULL_TIMEOUT_FACTOR = 2.5
NETID_MAX = 0xFFFFFF


def parse_identification(words, netid_words=None):
    """Identification block words → dict, or None if it is not a Socomec device.

    ``words``: from 0xC350, the 66-word block (or the B-30's 69, NET ID included);
    ``netid_words``: the 3 words read at 0xC392 (resource version, NET ID), if any.
    ``netid`` is None for a device whose identification has none.
    """
    if len(words) < catalogue.IDENT_WORDS or rtu.decode_string_16(words[0:4]) != "SOCO":
        return None
    netid = None
    if netid_words is not None:
        start = catalogue.IDENT_NETID - (catalogue.IDENT_NETID_BASE - catalogue.IDENT_BASE)
        netid = rtu.decode_value("u32", netid_words[start:start + 2]) & NETID_MAX
    elif len(words) >= catalogue.IDENT_NETID + 2:
        netid = rtu.decode_value("u32", words[catalogue.IDENT_NETID:catalogue.IDENT_NETID + 2]) & NETID_MAX
    serial = words[catalogue.IDENT_SERIAL:catalogue.IDENT_SERIAL + 3]
    return {
        "family": words[catalogue.IDENT_FAMILY],
        "product_id": words[catalogue.IDENT_PRODUCT],
        "software": words[catalogue.IDENT_SOFTWARE],
        "serial": catalogue.serial_text(*serial),
        "vendor": rtu.decode_string_norm(words[catalogue.IDENT_VENDOR:catalogue.IDENT_VENDOR + 8]),
        "name": rtu.decode_string_norm(words[catalogue.IDENT_NAME:catalogue.IDENT_NAME + 8]),
        "ext_name": rtu.decode_string_norm(words[catalogue.IDENT_EXT_NAME:catalogue.IDENT_EXT_NAME + 8]),
        "netid": netid,
    }


class Garbled(Exception):
    pass


class Discovery:
    def __init__(self, engines, topology, alarms, settings):
        self.engines = engines          # bus name -> BusEngine (master buses only)
        self.topology = topology
        self.alarms = alarms
        self.settings = settings
        self.state = "idle"
        self.mode = settings.get("discovery.mode")
        self.progress = 0.0
        self.found = 0
        self.message = ""
        self.conflicts = []
        self.synchronise = False
        self.changes = {}
        self._task = None
        self._done = {}
        self._known = {}             # uid -> Device of the topology when the detection started
        self._anonymous = 0          # devices without a NET ID seen by the last conflict resolution

    def status(self):
        return {"state": self.state, "mode": self.mode, "progress": round(self.progress, 3),
                "found": self.found, "message": self.message, "conflicts": list(self.conflicts),
                "synchronise": self.synchronise, "changes": dict((k, list(v)) for k, v in self.changes.items())}

    def running(self):
        return self._task is not None and not self._task.done()

    def start(self, mode=None, remove_missing=False):
        """Start a detection in the background; False if one is already running.

        ``remove_missing``: synchronise, i.e. also remove the devices of the scanned buses it does not find."""
        if self.running():
            return False
        mode = mode or self.settings.get("discovery.mode")
        check_value("discovery.mode", mode)          # SettingError (a ValueError) for anything else
        self.state, self.mode, self.progress, self.message = "running", mode, 0.0, "starting"
        self._task = asyncio.get_running_loop().create_task(self.run(mode, remove_missing), name="discovery")
        return True

    async def wait(self):
        if self._task is not None:
            await self._task

    async def stop(self):
        await cancel_and_wait(self._task)

    async def run(self, mode, remove_missing=False):
        self.mode = mode
        self.synchronise = bool(remove_missing)
        self.state = "running"
        self.progress = 0.0
        self.found = 0
        self.conflicts = []
        self.changes = {}
        self.message = "scanning"
        self._known = dict((d.uid, d) for d in self.topology.devices)
        first = self.settings.get("discovery.first_address")
        last = self.settings.get("discovery.last_address")
        timeout = self.settings.get("discovery.timeout_ms") / 1000.0
        if mode == "full":
            timeout *= FULL_TIMEOUT_FACTOR
        if not self.engines:     # no bus could be opened: keep the topology as it is
            self.state, self.message = "failed", "no master bus is available"
            return
        self._done = dict((bus, 0) for bus in self.engines)
        total = max(1, (last - first + 1) * len(self.engines))
        try:
            results = await asyncio.gather(*[
                self._scan_bus(bus, engine, first, last, timeout, mode, total)
                for bus, engine in self.engines.items()])
            devices = [d for bus_devices, _conflicts in results for d in bus_devices]
            # Conflicts are resolved once both buses are known: addresses are
            # unique across the two buses, so a free one must be free on both.
            if self.settings.get("discovery.auto_resolve"):
                taken = set(d.address for d in devices)
                for (bus, engine), (_found, conflicts) in zip(self.engines.items(), results):
                    for address in conflicts:
                        devices += await self._resolve(bus, engine, address, timeout, mode, taken)
            merged, changes = merge_detected(self.topology.devices, devices, set(self.engines), remove_missing,
                                             range(first, last + 1))
            await self.topology.replace(merged)          # the same site again: no change, nothing rebuilt
            self.changes = changes
            self.found = len(devices)
            self.state = "done"
            self.progress = 1.0
            self.message = "%d devices found (%d new), %d not found%s, %d removed" % (
                len(devices), len(changes["added"]), len(changes["not_found"]),
                " (kept)" if changes["not_found"] else "", len(changes["removed"]))
            log.info("detection (%s%s): %s", mode, ", synchronise" if remove_missing else "", self.message)
        except asyncio.CancelledError:
            self.state = "cancelled"
            raise
        except TopologyRefused as exc:          # over a SPEC §1 limit: a clear refusal, no stack trace
            log.warning("detection found a topology the gateway refuses: %s", exc)
            self.state = "failed"
            self.message = str(exc)
        except Exception as exc:
            log.exception("detection failed")
            self.state = "failed"
            self.message = str(exc)

    def know(self, devices):
        """The devices a module's loads are taken from when the module cannot tell them (a refresh of one)."""
        self._known = dict((d.uid, d) for d in devices)

    async def identify(self, engine, address, timeout):
        """Identification at ``address``: dict, None (nobody), Garbled (collision).

        The 66 words every family has; then the NET ID, only from a product whose
        table has one (a second read: exception 02 there means this one has none)."""
        try:
            words = await self._read(engine, address, catalogue.IDENT_BASE, catalogue.IDENT_WORDS, timeout, 0)
        except rtu.ModbusException:
            return None
        ident = parse_identification(words) if words is not None else None
        if ident is None:
            return None
        row = catalogue.identify(ident["family"], ident["product_id"], ident["ext_name"])
        if row is None or not catalogue.has_netid(row[catalogue.REF]):
            return ident
        try:
            extra = await self._read(engine, address, catalogue.IDENT_NETID_BASE, catalogue.IDENT_NETID_WORDS,
                                     timeout, 1)
        except rtu.ModbusException:
            return ident              # an older firmware without the NET ID words
        if extra is None:
            return None
        return parse_identification(words, extra)

    @staticmethod
    async def _read(engine, address, start, count, timeout, retries):
        """Words of one detection read; None when nobody answers, Garbled on a collision
        (a device's exception answer passes as ``ModbusException``)."""
        try:
            return await engine.read_registers(address, start, count, DISCOVERY, retries=retries, timeout=timeout)
        except BusGarbled:
            raise Garbled() from None
        except BusTimeout:
            return None

    async def _scan_bus(self, bus, engine, first, last, timeout, mode, total):
        """(devices found, addresses where several devices answer) on one bus."""
        found = []
        conflicts = []
        for address in range(first, last + 1):
            ident = None
            for _attempt in range(2):   # one retry tells a noisy frame from a collision
                try:
                    ident = await self.identify(engine, address, timeout)
                    break
                except Garbled:
                    ident = "garbled"
            if ident == "garbled":
                conflicts.append(address)
                self.conflicts.append({"bus": bus, "address": address})
                self.alarms.set(ALARM_CONFLICT, device_source(bus, address), True,
                                "several devices answer at address %d" % address)
            elif ident is not None:
                device = self.device_from(bus, address, ident, mode)
                if device is not None:
                    await self.set_loads(engine, device, timeout)
                    found.append(device)
            self._done[bus] += 1
            self.progress = 0.95 * sum(self._done.values()) / float(total)
        return found, conflicts

    async def _resolve(self, bus, engine, address, timeout, mode, taken):
        """Give every device sharing ``address`` its own; returns them as Devices."""
        self.message = "resolving the conflict at %s:%d" % (bus, address)
        netids = await self.resolve_conflict(engine, address, timeout)
        anonymous = self._anonymous
        addresses = [address]
        # the lowest NET ID keeps the address, unless a device without a NET ID (which cannot be
        # moved by one) is there too: then it keeps it and every NET ID moves
        for netid in (netids if anonymous else netids[1:]):
            new_address = self._free_address(taken | set(addresses))
            await engine.request(rtu.BROADCAST, rtu.write_registers_request(
                catalogue.NETID_ASSIGN_REGISTER, rtu.encode_value("u32", netid) + [new_address]), DISCOVERY)
            addresses.append(new_address)
            log.info("%s: NET ID %06X moved from %d to %d", bus, netid, address, new_address)
        found = []
        clean = 0
        for probe in addresses:
            ident = await self._identify_known(engine, probe, timeout)
            if ident is None:
                continue
            clean += 1
            taken.add(probe)
            device = self.device_from(bus, probe, ident, mode)
            if device is not None:
                await self.set_loads(engine, device, timeout)
                found.append(device)
        if netids and clean == len(addresses) and anonymous <= 1:
            self.alarms.set(ALARM_CONFLICT, device_source(bus, address), False,
                            "resolved by NET ID: %s" % ", ".join("%06X" % n for n in netids))
            self.message = "conflict at %s:%d resolved (%d devices)" % (bus, address, len(netids))
        return found

    async def set_loads(self, engine, device, timeout):
        """The device's loads: as read from a multi-load module, else as the topology knows them
        (a user's network types), else the catalogue's."""
        loads = await self._read_loads(engine, device, timeout)
        known = self._known.get(device.uid)
        if loads is None and known is not None and known.reference == device.reference:
            loads = [dict(x) for x in known.loads]
        if loads is not None:
            device.loads = loads

    async def _read_loads(self, engine, device, timeout):
        """The loads a multi-load module has enabled, with their network types; None when it cannot tell."""
        row = device.product
        if row[catalogue.PROFILE] != "digiware_load":
            return None
        loads = []
        for n in range(1, row[catalogue.LOADS] + 1):
            start = catalogue.LOAD_SETTINGS_BASE + (n - 1) * catalogue.LOAD_SETTINGS_STRIDE
            try:
                enabled, code = await engine.read_registers(device.address, start, 2, DISCOVERY, timeout=timeout)
            except (BusTimeout, rtu.ModbusException):
                return None
            if enabled:
                loads.append({"load": n, "network": catalogue.LOAD_TYPE_NETWORK.get(code, "3P+N"),
                              "name": "Load %d" % n})
        return loads

    async def _identify_known(self, engine, address, timeout):
        """Identification of a device known to be at ``address`` (it was just given it by its NET ID): a
        silence or a garbled answer is asked again, up to RESOLVE_ATTEMPTS times, as a poll would be. The
        scan's single short try suits an empty address; here one late answer (a slow device applying its
        new address, a noisy frame) would leave the conflict alarm up and the device out of the topology."""
        for _attempt in range(RESOLVE_ATTEMPTS):
            try:
                ident = await self.identify(engine, address, timeout)
            except Garbled:
                ident = None
            if ident is not None:
                return ident
        return None

    def device_from(self, bus, address, ident, mode):
        row = catalogue.identify(ident["family"], ident["product_id"], ident["ext_name"])
        if row is None:
            log.warning("%s:%d: unknown product %r (%d/%d)", bus, address, ident["ext_name"],
                        ident["family"], ident["product_id"])
            return None
        if row[catalogue.PROFILE] == "gateway":
            return None
        netid = "" if ident["netid"] is None else "%06X" % ident["netid"]
        device = Device(bus, address, row[catalogue.REF], netid, serial=ident.get("serial", ""))
        if mode == "fast" and not row[catalogue.FAST] and device.uid not in self._known:
            return None                  # FAST does not add it; a known one answering is found
        return device

    @staticmethod
    def _free_address(taken):
        for candidate in range(247, 0, -1):
            if candidate not in taken:
                return candidate
        raise RuntimeError("no free Modbus address left")

    async def _filter(self, engine, address, lo, hi):
        await engine.request(rtu.BROADCAST, rtu.write_registers_request(
            catalogue.NETID_FILTER_REGISTER, [address] + rtu.encode_value("u32", lo) + rtu.encode_value("u32", hi)),
            DISCOVERY)

    async def resolve_conflict(self, engine, address, timeout):
        """NET IDs of every device at ``address`` that has one, lowest first (bisection).

        A device without a NET ID ignores the filter and answers whatever the range:
        an empty range tells whether one is there (``self._anonymous``: 0, 1, or 2
        for "several"); each NET ID is then found as the one-value range where it
        collides with it."""
        netids = []
        self._anonymous = 0
        await self._filter(engine, address, 1, 0)            # an empty range: every NET ID is muted
        try:
            alone = await self.identify(engine, address, timeout)
        except Garbled:
            alone = "garbled"
        if alone == "garbled":
            self._anonymous = 2
        elif alone is not None and alone["netid"] is None:
            self._anonymous = 1

        async def search(lo, hi, depth):
            await self._filter(engine, address, lo, hi)
            try:
                ident = await self.identify(engine, address, timeout)
            except Garbled:
                if lo == hi or depth > 26:
                    if lo == hi and self._anonymous:
                        netids.append(lo)        # it collides with the device without a NET ID only
                    return
                mid = (lo + hi) // 2
                await search(lo, mid, depth + 1)
                await search(mid + 1, hi, depth + 1)
                return
            if ident is not None and ident["netid"] is not None:
                netids.append(ident["netid"])

        if self._anonymous < 2:                 # two devices without a NET ID collide in every range
            await search(0, NETID_MAX, 0)
        await self._filter(engine, address, 0, NETID_MAX)   # everybody listens again
        return sorted(netids)
