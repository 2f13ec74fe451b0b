"""The Devices pages: sources, circuits, usages, the topology's edits (SPEC §7.2, issue 14).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from board.base import BUS_NAMES
from daemon.blocking import BlockingQueueFull
from daemon.door.base import BAD_VALUE, BUSY, NOT_FOUND, UNSUPPORTED, STORAGE, Refused, _bus_refusals
from daemon.runtime import refresh
from daemon.state import (devicefields, devstate, topology as topology_mod, usages as usages_mod)

log = logging.getLogger("gateway.api")


class DevicesPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ the Devices pages (SPEC §7.2, issue 14)
    # Sources (add by hand, edit, delete, refresh), Circuits (name, fluid, usage per load), Usages (custom ones).
    # Every change goes through Topology.replace (the SPEC §1 limits, all or nothing); a form's refusal is
    # Refused(BAD_VALUE) with one detail per field (daemon/state/devicefields.py).

    def _usages(self):
        """The usages store of this gateway (daemon/state/usages.py, read when the gateway is built)."""
        return self._gw.usages

    def _baud_or_none(self, bus):
        try:
            return self._gw.settings.get("bus.%s.baud" % bus)
        except (KeyError, ValueError):
            return None

    def devices_catalogue(self):
        """What the Devices forms offer: addable products, buses, fluids, usages, the name bound, the limits."""
        return {"products": devicefields.products(), "buses": list(BUS_NAMES), "fluids": list(usages_mod.FLUIDS),
                "usages": self._usages().listing(), "max_name": usages_mod.MAX_NAME,
                "default_fluid": usages_mod.DEFAULT_FLUID, "default_usage": usages_mod.DEFAULT_USAGE,
                "address_range": [devicefields.MIN_ADDRESS, devicefields.MAX_ADDRESS],
                "limits": {"devices": topology_mod.MAX_DEVICES, "circuits": topology_mod.MAX_CIRCUITS,
                           "slow_baud": topology_mod.SLOW_BAUD, "devices_slow": topology_mod.MAX_DEVICES_SLOW}}

    def sources(self):
        """The Sources table: the gateway first (it cannot be deleted), then every device with its
        communication state and the age of its values and of its last answer."""
        now = self._gw.clock.time()
        identity = self.identity()
        rows = [{"gateway": True, "reference": identity["product"], "name": identity["name"],
                 "area": identity["area"], "address": identity["modbus_address"], "bus": "ethernet",
                 "netid": identity["netid"], "serial": identity["serial"], "status": devstate.OK, "age_s": 0.0,
                 "networks": [], "loads": 0, "not_found": False}]
        for device in self.devices():
            summary = self.device_summary(device.address)
            last = summary.last_success
            rows.append({"gateway": False, "reference": device.reference, "name": device.name, "area": device.area,
                         "address": device.address, "bus": device.bus, "netid": device.netid, "serial": device.serial,
                         "status": summary.state, "age_s": None if summary.age is None else round(summary.age, 1),
                         "last_success_age_s": None if last is None else round(max(0.0, now - last), 1),
                         # a generic device's loads have no Socomec network type: its data model says what it measures
                         "networks": [] if device.generic else sorted({x.get("network", "3P+N") for x in device.loads}),
                         "loads": len(device.loads), "not_found": device.not_found})
        return rows

    def circuits(self):
        """Every load of every device: its device, number, network type, name, fluid and usage."""
        return [{"address": d.address, "device": d.name, "reference": d.reference, "area": d.area,
                 "load": x["load"], "network": None if d.generic else x.get("network", "3P+N"),
                 "name": x.get("name", ""),
                 "fluid": usages_mod.fluid_of(x), "usage": usages_mod.usage_of(x),
                 "status": self.device_link(d.address)}
                for d in self.devices() for x in d.loads]

    def usage_counts(self):
        """{usage key: loads that have it} (a load without one counts as the default usage)."""
        counts = {}
        for device in self._gw.topology.devices:
            for load in device.loads:
                key = usages_mod.usage_of(load)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _editing(self, command="edit_topology"):
        self._check(command)
        discovery = self._gw.discovery
        if discovery is not None and discovery.running():
            raise Refused(BUSY, "a detection is running: change the devices when it has ended")

    async def _replace_devices(self, devices, what):
        """Topology.replace with the refusals said per field; BAD_VALUE, STORAGE or BUSY change nothing."""
        details = devicefields.limit_details(devices, self._baud_or_none)
        if details:
            raise Refused(BAD_VALUE, "%s refused: %s" % (what, ", ".join(d["key"].rsplit(".", 1)[-1]
                                                                          for d in details)), details)
        try:
            await self._gw.topology.replace(devices)
        except topology_mod.TopologyRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [devicefields.detail(None, "web.devices.error.topology")]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the topology could not be saved: %s" % exc) from None

    @staticmethod
    def _form_refused(what, details):
        raise Refused(BAD_VALUE, "%s refused: %s" % (what, ", ".join(sorted(set(str(d["field"]) for d in details)))),
                      details)

    async def add_device(self, fields):
        """Add a device by hand: {bus, address, reference, name, area[, netid, serial]}; the device added."""
        self._editing()
        if not isinstance(fields, dict):
            self._form_refused("device", [devicefields.detail(None, "web.devices.error.object")])
        clean, details = devicefields.check_device(fields, BUS_NAMES, creating=True)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            device = devicefields.new_device(clean)
            if device.netid and any(d.uid == device.uid for d in topology.devices):
                self._form_refused("device", [devicefields.detail("netid", "web.devices.error.netid_taken")])
            await self._replace_devices(topology.devices + [device], "device")
        log.info("%r added %r", self.caller, device)
        return device.as_dict()

    async def edit_device(self, address, fields):
        """Change a device's name, area, address or bus (the limits checked again); the device as it is now."""
        self._editing()
        if not isinstance(fields, dict) or not fields:
            self._form_refused("device", [devicefields.detail(None, "web.devices.error.object")])
        clean, details = devicefields.check_device(fields, BUS_NAMES, creating=False)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            old = topology.device(address)
            if old is None:
                raise Refused(NOT_FOUND, "no device at address %r" % address)
            new = devicefields.edited_device(old, clean)
            await self._replace_devices([new if d is old else d for d in topology.devices], "device")
        log.info("%r edited %r: %s", self.caller, new, ", ".join(sorted(clean)))
        return new.as_dict()

    async def delete_devices(self, targets):
        """Delete devices by address; "gateway" (the gateway's own row) is refused, as an unknown address."""
        self._editing()
        topology = self._gw.topology
        async with topology.edit_lock:
            details = []
            if not isinstance(targets, list) or not targets or len(targets) > topology_mod.MAX_DEVICES + 1:
                details.append(devicefields.detail("addresses", "web.devices.error.selection",
                                                   max=topology_mod.MAX_DEVICES + 1))
            else:
                for target in targets:
                    if target == "gateway":
                        details.append(devicefields.detail("gateway", "web.devices.error.gateway"))
                    elif type(target) is not int or topology.device(target) is None:
                        details.append(devicefields.detail("addresses", "web.devices.error.no_device",
                                                           address=str(target)[:16]))
            if details:
                self._form_refused("deletion", details)
            gone = set(targets)
            await self._replace_devices([d for d in topology.devices if d.address not in gone], "deletion")
        log.info("%r deleted the devices at %s", self.caller, ", ".join(str(a) for a in sorted(gone)))
        return sorted(gone)

    async def refresh_devices(self, addresses=None):
        """Read the identification of the devices at ``addresses`` (all for None) again on their buses:
        [{address, result}] with result same / other_product / silent / conflict / unknown / no_bus
        (refresh.py); a device that does not answer is kept and flagged not found."""
        self._editing()
        discovery = self._gw.discovery
        if discovery is None:
            raise Refused(UNSUPPORTED, "no bus to read the devices on")
        topology = self._gw.topology
        async with topology.edit_lock:
            if addresses is None:
                targets = list(topology.devices)
            else:
                targets = [topology.device(a) for a in addresses]
                if None in targets:
                    raise Refused(NOT_FOUND, "no device at address %s" % addresses[targets.index(None)])
            results, replaced = [], {}
            for device in targets:
                engine = self._gw.engines.get(device.bus)
                if engine is None or device.link is not None:     # a generic device has no identification
                    results.append({"address": device.address, "result": "no_bus"})
                    continue
                with _bus_refusals():
                    outcome, found = await refresh.identify(discovery, engine, device)
                answer = {"address": device.address, "result": outcome}
                if outcome == refresh.SAME:
                    replaced[device.address] = refresh.refreshed(device, found)
                elif outcome == refresh.SILENT:
                    replaced[device.address] = refresh.silent(device)
                elif outcome == refresh.OTHER:
                    answer["reference"] = found.reference
                results.append(answer)
            await self._replace_devices([replaced.get(d.address, d) for d in topology.devices], "refresh")
        log.info("%r refreshed %d devices", self.caller, len(results))
        return results

    async def edit_circuits(self, form):
        """Name, fluid and usage of one load, or the same fluid / usage / name pattern for several
        (devicefields.check_circuit_edit); how many loads changed."""
        self._editing()
        if not isinstance(form, dict):
            self._form_refused("circuits", [devicefields.detail(None, "web.devices.error.object")])
        topology = self._gw.topology
        async with topology.edit_lock:
            edits, details = devicefields.check_circuit_edit(form, topology.devices, self._usages().known)
            if details:
                self._form_refused("circuits", details)
            await self._replace_devices(devicefields.with_circuit_edits(topology.devices, edits), "circuits")
        log.info("%r edited %d circuits", self.caller, len(edits))
        return len(edits)

    async def _usage_change(self, change, *args):
        self._check("edit_usages")
        try:
            return await change(*args)
        except usages_mod.UsageRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [exc.detail]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the usages could not be saved: %s" % exc) from None

    async def add_usage(self, name):
        """A custom usage; its key (custom-<n>)."""
        key = await self._usage_change(self._usages().add, name)
        log.info("%r added the usage %s (%r)", self.caller, key, name)
        return key

    async def rename_usage(self, key, name):
        await self._usage_change(self._usages().rename, key, name)

    async def delete_usage(self, key):
        """Delete a custom usage; refused while a load has it (change those loads first)."""
        async with self._gw.topology.edit_lock:        # no circuit gets it while it goes
            in_use = devicefields.usage_count(self._gw.topology.devices, key)
            await self._usage_change(self._usages().delete, key, in_use)
