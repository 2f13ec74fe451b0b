"""Devices off the Socomec catalogue: generic Modbus devices and Bluetooth sources (issue 18).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from board.base import BUS_NAMES
from core import ble_formats, datamodel, registry
from daemon.blocking import BlockingQueueFull
from daemon.door.base import BAD_VALUE, BUSY, NOT_FOUND, STORAGE, Refused
from daemon.state import (blesources, datamodels as datamodels_mod, genericfields, topology as topology_mod)

log = logging.getLogger("gateway.api")


class SourcesPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ issue 18: generic Modbus devices
    # Data models (core/datamodel.py, the store daemon/state/datamodels.py) and the devices described by them:
    # on a master bus (link rtu) or over Modbus TCP (link tcp, daemon/runtime/tcplink.py). A refusal is
    # Refused(BAD_VALUE) with one detail per field (and per CSV line); nothing changes.

    def data_model_catalogue(self):
        """What the Data models page and the generic-device form offer: encodings, functions, word orders, the
        standard names with their units, the limits, the models' names, the buses."""
        self._check("read_data_models")
        return {"encodings": sorted(datamodel.ENCODINGS), "functions": list(datamodel.FUNCTIONS),
                "word_orders": list(datamodel.WORD_ORDERS), "columns": list(datamodel.COLUMNS),
                "standard": [{"name": n, "unit": registry.get(datamodel.STANDARD_KEYS[n])[registry.UNIT],
                              "label": registry.get(datamodel.STANDARD_KEYS[n])[registry.NAME]}
                             for n in datamodel.STANDARD_NAMES],
                "limits": {"models": datamodel.MAX_MODELS, "rows": datamodel.MAX_ROWS, "name": datamodel.MAX_NAME,
                           "unit": datamodel.MAX_UNIT, "register_span": datamodel.MAX_REGISTER_SPAN,
                           "bit_span": datamodel.MAX_BIT_SPAN, "csv_bytes": datamodel.MAX_CSV_BYTES},
                "models": self._gw.datamodels.names(), "buses": [b for b in BUS_NAMES if b in self._gw.engines],
                "tcp_bus": topology_mod.TCP_BUS}

    def data_models(self):
        """Every model with its rows and the devices that use it."""
        self._check("read_data_models")
        store = self._gw.datamodels
        return [dict(store.get(name), devices=self._model_users(name)) for name in store.names()]

    def _model_users(self, name):
        return [d.name for d in self._gw.topology.devices if d.model is not None and d.model["name"] == name]

    async def _model_change(self, change, *args):
        try:
            return await change(*args)
        except datamodels_mod.ModelRefused as exc:
            raise Refused(BAD_VALUE, str(exc), exc.details) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the data models could not be saved: %s" % exc) from None

    async def save_data_model(self, data, replacing=None):
        """Create a model, or replace the one named ``replacing`` (a rename too); the devices that use it take
        the new rows in one topology change (their poll plans follow). The clean model."""
        self._editing("edit_data_models")
        topology = self._gw.topology
        async with topology.edit_lock:
            old_name = replacing if replacing is not None else (data.get("name") if isinstance(data, dict) else None)
            if replacing is None and isinstance(old_name, str) and self._gw.datamodels.get(old_name.strip()):
                raise Refused(BAD_VALUE, "a model is already named %r" % old_name,
                              [datamodel.detail("model", "generic.error.model_taken", name=old_name.strip())])
            checked, problems = datamodel.check_model(data)
            if problems:
                raise Refused(BAD_VALUE, "model refused: %s" % datamodels_mod.summary(problems), problems)
            users = [d for d in topology.devices if d.model is not None and d.model["name"] == replacing]
            if users:          # the devices first: a refused topology (limits) leaves the model as it was
                await self._replace_devices([d.kept(model=checked) if d in users else d for d in topology.devices],
                                            "model")
            model = await self._model_change(self._gw.datamodels.save, checked, replacing)
        log.info("%r saved the data model %r (%d rows, %d devices)", self.caller, model["name"], len(model["rows"]),
                 len(users))
        return model

    async def delete_data_model(self, name):
        """Delete a model no device uses (refused naming the devices that do)."""
        self._editing("edit_data_models")
        async with self._gw.topology.edit_lock:
            await self._model_change(self._gw.datamodels.delete, name, self._model_users(name))
        log.info("%r deleted the data model %r", self.caller, name)

    async def import_data_model(self, name, text, replace=False):
        """A model from CSV text (``;`` separated, a header row: core/datamodel.py COLUMNS). Refused with one
        detail per line at fault, and then nothing is imported; ``replace``: the rows of the model ``name``."""
        self._editing("edit_data_models")
        rows, problems = datamodel.parse_csv(text)
        if problems:
            raise Refused(BAD_VALUE, "CSV refused: %s" % datamodels_mod.summary(problems), problems)
        return await self.save_data_model({"name": name, "rows": rows}, name if replace else None)

    def export_data_model(self, name):
        """(file name, CSV text) of one model: what ``import_data_model`` reads back."""
        self._check("read_data_models")
        model = self._gw.datamodels.get(name)
        if model is None:
            raise Refused(NOT_FOUND, "no data model %r" % str(name)[:40])
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in model["name"])
        return "model-%s.csv" % safe, datamodel.to_csv(model["rows"])

    async def add_generic_device(self, fields):
        """Add a generic device: {link: "rtu", bus, address, model, name[, area]} or {link: "tcp", host, port,
        unit, address (its place in the protocols' tables), model, name[, area]}; the device added."""
        self._editing()
        clean, details = genericfields.check_generic(fields, list(self._gw.engines) or list(BUS_NAMES),
                                                     self._gw.datamodels.get)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            device = genericfields.new_generic(clean, self._gw.datamodels.get(clean["model"]))
            await self._replace_devices(topology.devices + [device], "device")
        log.info("%r added the generic device %r", self.caller, device)
        return device.as_dict()

    def generic_values(self, address):
        """Every row of a generic device's model with its value, unit, quality and age: the registry ones from the
        cache (as every protocol reads them), the model's own ones (shown in the web only)."""
        self._check("read_data_models")
        device = self._gw.topology.device(address)
        if device is None or device.model is None:
            raise Refused(NOT_FOUND, "no generic device at address %r" % address)
        cache, now = self._gw.cache, self._gw.clock.time()
        out = []
        for row in device.model["rows"]:
            key = datamodel.row_key(row)
            standard = datamodel.is_standard(key)
            reading = cache.get(address, datamodel.LOAD, key) if standard else \
                cache.get_extra(address, datamodel.LOAD, key)
            out.append({"name": row["name"], "key": key, "standard": standard, "unit": row["unit"],
                        "frame": row["frame"], "value": reading.value, "quality": reading.quality,
                        "ts": reading.timestamp,
                        "age_s": None if reading.timestamp is None else round(max(0.0, now - reading.timestamp), 1)})
        return {"address": address, "name": device.name, "model": device.model["name"], "link": device.link,
                "bus": device.bus, "status": self.device_link(address), "values": out}

    # ================================================================ issue 18: Bluetooth sources
    # The scan (daemon/runtime/ble.py) runs while policy.bluetooth AND bluetooth.enabled; the Bluetooth page
    # (Admin, Cyber Security) reads what was heard and adds or removes sources, devices of the topology
    # (daemon/state/blesources.py) whose values the scan puts in the cache: read like a meter's everywhere.

    def bluetooth_status(self):
        """{radio, policy, enabled, running, error, received, dropped, led, sources, max_sources, units}: ``units``
        of the values the formats give (core/ble_formats.py UNITS)."""
        self._check("read_bluetooth")
        out = self._gw.ble.status()
        out.update(sources=len(blesources.sources(self._gw.topology.devices)), max_sources=blesources.MAX_SOURCES,
                   units=dict(ble_formats.UNITS))
        return out

    def bluetooth_heard(self):
        """What the scan heard, by address: [{address, name, format, values, values_age_s, quality, refusal, rssi,
        age_s, count, source}] (``source``: the name it was added under, or None)."""
        self._check("read_bluetooth")
        known = blesources.sources(self._gw.topology.devices)
        rows = self._gw.ble.heard_list()
        for row in rows:
            device = known.get(row["address"])
            row["source"] = device.name if device is not None else None
        return rows

    def bluetooth_sources(self):
        """The sources: [{address, name, area, format, device, values}]; ``device`` is the Modbus address the
        protocols' tables give it, ``values`` {registry key: [value, quality, age_s]} from the cache."""
        self._check("read_bluetooth")
        cache, now = self._gw.cache, self._gw.clock.time()
        out = blesources.listing(self._gw.topology.devices)
        for entry in out:
            readings = dict((key, cache.get(entry["device"], 1, key)) for key in cache.keys(entry["device"], 1))
            entry["values"] = dict((key, [r.value, r.quality, None if r.timestamp is None
                                          else round(max(0.0, now - r.timestamp), 1)])
                                   for key, r in readings.items())
        return out

    async def _bluetooth_change(self, change):
        """``change(devices)`` -> new devices, under the sources' lock, then the topology replaced (its limits
        and the devices pages' refusals apply); BleRefused as BAD_VALUE / NOT_FOUND with the catalogue key."""
        self._editing("edit_bluetooth_sources")
        async with self._gw.ble.sources_lock:
            try:
                devices, result = change(list(self._gw.topology.devices))
            except blesources.BleRefused as exc:
                reason = NOT_FOUND if exc.detail["key"] == "ble.error.no_source" else BAD_VALUE
                raise Refused(reason, str(exc), [exc.detail]) from None
            await self._replace_devices(devices, "Bluetooth source")
        return result

    async def add_bluetooth_source(self, address, name, area=""):
        """Add a sensor the scan heard in a readable frame as a source named ``name`` in ``area``; its entry."""
        normal = blesources.normal_address(address)
        heard = self._gw.ble.heard_format(normal) if normal else None
        device = await self._bluetooth_change(
            lambda devices: blesources.with_source(devices, address, name, area, heard))
        log.info("%r added the Bluetooth source %s (%s, %s) at address %d", self.caller, device.link["mac"],
                 device.name, device.link["format"], device.address)
        return next(e for e in blesources.listing(self._gw.topology.devices) if e["address"] == device.link["mac"])

    async def remove_bluetooth_source(self, address):
        await self._bluetooth_change(lambda devices: (blesources.without_source(devices, address), None))
        log.info("%r removed the Bluetooth source %s", self.caller, address)
