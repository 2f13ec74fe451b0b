"""Sparkplug B (Eclipse Sparkplug 3.0) payload mode: the gateway is one Edge Node, each meter one Device.

What goes on the wire, by the specification's chapters (4 Topics, 5 Operational Behavior, 6 Payloads); the
rules are named by their TCK ids (tck-id-...):

* Topics ``spBv1.0/<group_id>/<NBIRTH|NDATA|NDEATH|NCMD>/<edge_node_id>`` and
  ``spBv1.0/<group_id>/<DBIRTH|DDATA|DDEATH>/<edge_node_id>/<device_id>``; the ids are UTF-8 without the
  reserved + / # (topic-structure-namespace-valid-*), so those (and NUL) become "_" in a meter's name; a clash
  gets "@<address>".
* Every message but NDEATH carries ``seq`` 0..255, one more than the previous message of the node, wrapping
  to 0 after 255; NBIRTH has seq 0 (payloads-sequence-num-*). Nothing is retained. Births, deaths and NDATA
  are QoS 0 (topics-*-mqtt); the will (NDEATH) QoS 1 (payloads-ndeath-will-message-qos). DDATA, which
  carries the spool's samples, takes the QoS of ``mqtt.qos``: 1 (the default) is the issue's store-and-forward
  guarantee (a sample leaves the spool on its PUBACK, none lost when the broker goes down), at the cost of
  topics-ddata-mqtt ("DDATA MUST be QoS 0"); 0 keeps that rule to the letter.
* ``bdSeq`` (Int64) is in the will's NDEATH and the NBIRTH of the same connection, 0 for the first connection
  ever, one more for each new CONNECT, 255 -> 0 (message-flow-edge-node-birth-publish-will-message-payload-
  bdSeq). It survives restarts: the service persists ``state()`` before each CONNECT and a restart goes on
  from the next one (``restore``); a connection that drops (``session_ended``) moves to the next one.
* NBIRTH: bdSeq, ``Node Control/Rebirth`` (Boolean false, no alias: operational-behavior-data-commands-
  rebirth-*), the gateway's identity as ``Properties/...`` and its status (``Status/Devices``,
  ``Status/Devices online``), whose changes go as NDATA.
* DBIRTH per present meter with every metric its loads offer: name "Load <n>/<standard name>" (the
  registry's WEBVIEW-L standard name; a device-level value, load 0, has no folder), alias, datatype, current
  value, and the properties ``engUnit`` (the unit; the property name of Eclipse Tahu's examples and of
  Ignition tags) and ``Quality`` (Int32: 192 GOOD, 500 STALE, 0 BAD: ch. 6 "Quality Codes",
  payloads-propertyset-quality-value-*).
* DDATA: alias only, the sample's own timestamp, ``is_historical`` for logged-curve points and anything
  acquired before the device's current DBIRTH (spooled values published after an outage: ch. 6 "Metric");
  the Quality property when the value is not good or was not good before (it is only required when not
  GOOD). A metric the DBIRTH did not declare makes a new DBIRTH first (topics-dbirth-metric-reqs).
* NCMD ``Node Control/Rebirth`` = true -> NBIRTH (same bdSeq, seq 0) and every DBIRTH again
  (operational-behavior-data-commands-rebirth-action-*).
* Primary host (``spBv1.0/STATE/<host_id>``, JSON {"online", "timestamp"}: message-flow-edge-node-birth-
  publish-phid-wait-*): when configured, nothing is born before its STATE says online with a timestamp not
  older than the last one seen (the service asks for births once ``may_publish()``); births are sent again
  when it comes back online. On "offline" the node publishes its NDEATH (the will's payload), stops and asks
  the service for a new connection (``reconnect_wanted``: message-flow-edge-node-birth-publish-phid-offline), whose
  NBIRTH, once the host is online again, has the next bdSeq.
"""

import json
import logging

from core import registry
from daemon.state import cache, devstate
from outbound.mqtt import sparkplug_pb as pb
from outbound.mqtt.modes import Message, Mode

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
UNIT_PROPERTY = "engUnit"
QUALITY_PROPERTY = "Quality"

# The settings this mode reads (rows in daemon/state/settings.py).
SETTING_GROUP = "mqtt.group_id"
SETTING_NODE = "mqtt.edge_node_id"
SETTING_PRIMARY = "mqtt.primary_host_id"
SETTING_QOS = "mqtt.qos"

# Sparkplug quality codes (ch. 6 "Quality Codes"): GOOD 192, STALE 500, BAD 0. A value the meter stopped
# refreshing (stale, or its device lost) is the last known one: STALE, as a host marks a dead device's metrics
# (ch. 5 "Device Session Termination"). Anything else (no value, not supported, an unknown name) is BAD.
QUALITY_GOOD = 192
QUALITY_STALE = 500
QUALITY_BAD = 0
QUALITY_CODES = {cache.GOOD: QUALITY_GOOD, cache.STALE: QUALITY_STALE, cache.COMM_LOST: QUALITY_STALE,
                 "lost": QUALITY_STALE}
# A logged-curve point's quality is "good", "missing" or the store's flags on a valid point joined by "+"
# (daemon/storage/format.py quality_name): a valid point is GOOD, its flags go as the "Quality Flags" property.
CURVE_FLAGS = frozenset(("incomplete", "clock_not_set", "accumulated", "backfilled"))
FLAGS_PROPERTY = "Quality Flags"

# Registry encoding (gw_type, whole units) -> Sparkplug datatype; a scaled value (gw_scale > 1) is a Double.
DATATYPES = {"u32": pb.UINT32, "s32": pb.INT32, "u64": pb.UINT64}

# The node's own metrics after bdSeq and Rebirth: (name, datatype, identity key or status function), alias = row + 1.
NODE_PROPERTIES = (
    ("Properties/Hardware Make", pb.STRING, "vendor"),
    ("Properties/Hardware Model", pb.STRING, "product"),
    ("Properties/FW", pb.STRING, "firmware"),
    ("Properties/NET ID", pb.STRING, "netid"),
    ("Properties/Serial Number", pb.STRING, "serial"),
    ("Properties/Name", pb.STRING, "name"),
    ("Properties/Location", pb.STRING, "location"),
)
NODE_STATUS = (
    ("Status/Devices", pb.UINT32, lambda mode: len(mode.door.devices())),
    ("Status/Devices online", pb.UINT32, lambda mode: len(mode._born)),
)
STATUS_ALIAS0 = len(NODE_PROPERTIES) + 1
MAX_METRICS = 500          # metrics in one DDATA: a long spool flush goes as several messages

# Device metric aliases: address << 24 | load << 12 | registry row + 1; keys outside the registry count from
# EXTRA_ALIAS0 within their load. Unique across the node (tck-id-payloads-alias-uniqueness) and the same every session.
EXTRA_ALIAS0 = 0x800
_ROW = dict((row[registry.KEY], index) for index, row in enumerate(registry.MEASUREMENTS))
_RESERVED = str.maketrans({"+": "_", "/": "_", "#": "_", "\0": "_"})


def _ms(seconds):
    return None if seconds is None else int(round(seconds * 1000))


def quality_code(name):
    if name in QUALITY_CODES:
        return QUALITY_CODES[name]
    return QUALITY_GOOD if curve_flags(name) else QUALITY_BAD


def curve_flags(name):
    """The store's flags of a valid logged point ("backfilled+clock_not_set"), else ""."""
    flags = (name or "").split("+") if isinstance(name, str) else []
    return name if flags and set(flags) <= CURVE_FLAGS else ""


def metric_name(load, key):
    try:
        name = registry.get(key)[registry.STD_NAME]
    except KeyError:
        name = key.translate(_RESERVED)
    return name if load == 0 else "Load %d/%s" % (load, name)


def datatype_of(key, value):
    try:
        row = registry.get(key)
    except KeyError:
        if isinstance(value, bool):
            return pb.BOOLEAN
        return pb.INT64 if isinstance(value, int) else pb.DOUBLE
    if row[registry.GW_SCALE] != 1:
        return pb.DOUBLE
    return DATATYPES.get(row[registry.GW_TYPE], pb.DOUBLE)


def wire_value(datatype, value):
    """The value as its datatype carries it (None stays None: is_null)."""
    if value is None:
        return None
    if datatype == pb.BOOLEAN:
        return bool(value)
    if datatype in (pb.DOUBLE, pb.FLOAT):
        return float(value)
    number = int(round(value))
    return max(0, number) if datatype in (pb.UINT32, pb.UINT64) else number


def unit_of(key):
    try:
        return registry.get(key)[registry.UNIT]
    except KeyError:
        return ""


class SparkplugMode(Mode):
    """The Sparkplug B session of one Edge Node (see the module's docstring for the rules followed)."""

    def __init__(self, door, settings):
        super().__init__(door, settings)
        self._bdseq = 0            # the bdSeq of the current (or next) connection
        self._bdseq_used = False   # its will was handed out: a restart must not reuse it
        self._seq = None           # the seq of the last message sent in this session (None: no NBIRTH yet)
        self._active = False       # between births() and session_ended()
        self._node_born = False
        self._born = {}            # address -> (device_id, DBIRTH ms, {(load, key): alias})
        self._extra = {}           # address -> {(load, key)} seen in samples beyond the device's snapshot
        self._extra_alias = {}     # (address, load, key) -> alias of a key outside the registry
        self._last_quality = {}    # (address, load, key) -> last quality code published live
        self._lost = set()         # addresses reported lost by the service
        self._status = {}          # status metric name -> last value published
        self._host_online = False
        self._reconnect = False    # the primary host went offline: the service connects again (phid-offline)
        self._host_ts = None       # timestamp of the last STATE accepted from the primary host

    # ------------------------------------------------------------------ names and topics
    def _setting(self, name):
        value = self.settings(name)
        return value.strip() if isinstance(value, str) else ""

    def group_id(self):
        return self._setting(SETTING_GROUP).translate(_RESERVED) or "OPEN-M70"

    def edge_node_id(self):
        return self._setting(SETTING_NODE).translate(_RESERVED) or self.door.identity()["netid"] or "gateway"

    def primary_host_id(self):
        return self._setting(SETTING_PRIMARY)

    def node_topic(self, verb):
        return "%s/%s/%s/%s" % (NAMESPACE, self.group_id(), verb, self.edge_node_id())

    def device_topic(self, verb, device_id):
        return "%s/%s/%s/%s/%s" % (NAMESPACE, self.group_id(), verb, self.edge_node_id(), device_id)

    def state_topic(self):
        return "%s/STATE/%s" % (NAMESPACE, self.primary_host_id())

    def _device_ids(self):
        """{address: device_id} of every device of the topology: its name without reserved characters."""
        ids, taken = {}, set()
        for device in self.door.devices():
            name = (device.name or "").translate(_RESERVED).strip() or "device-%d" % device.address
            if name in taken:
                name = "%s@%d" % (name, device.address)
            taken.add(name)
            ids[device.address] = name
        return ids

    # ------------------------------------------------------------------ the interface
    def will(self):
        self._bdseq_used = True
        payload = pb.encode_payload(metrics=[pb.Metric(BDSEQ, datatype=pb.INT64, value=self._bdseq)])
        return Message(self.node_topic("NDEATH"), payload, 1, False)

    def bdseq(self):
        return self._bdseq

    def subscriptions(self):
        subs = [(self.node_topic("NCMD"), 1)]
        if self.primary_host_id():
            subs.append((self.state_topic(), 1))
        return subs

    def may_publish(self):
        return not self.primary_host_id() or self._host_online

    def births(self, now):
        self._active = True
        self._node_born = False
        self._born = {}
        if not self.may_publish():
            return []
        return self._birth_sequence(now)

    def reconnect_wanted(self):
        return self._reconnect

    def session_ended(self):
        self._reconnect = False
        self._active = False
        self._node_born = False
        self._born = {}
        self._seq = None
        self._host_online = False           # the retained STATE comes again with the next subscription
        if self._bdseq_used:
            self._bdseq = (self._bdseq + 1) % 256
            self._bdseq_used = False

    def state(self):
        """The bdSeq of the current (or next) connection. The service writes it before each CONNECT."""
        return {"bdSeq": self._bdseq}

    def restore(self, state):
        """A saved bdSeq may already have been on the wire (saved, connected, then SIGKILLed: the broker still
        holds that will): the first connection after a restart uses the next one. A clean restart skips one
        number; reusing one would let the old session's NDEATH kill the new session at the host."""
        try:
            value = int(state.get("bdSeq", 0))
        except (AttributeError, TypeError, ValueError):
            log.warning("sparkplug: unreadable saved state %r, bdSeq starts at 0", state)
            return
        self._bdseq = (value + 1) % 256
        self._bdseq_used = False

    def incoming(self, topic, payload, now):
        if topic == self.node_topic("NCMD"):
            return self._command(payload, now)
        if self.primary_host_id() and topic == self.state_topic():
            return self._host_state(payload, now)
        return []

    def encode(self, samples, now):
        if not self._node_born:
            if not self._active or not self.may_publish():
                raise RuntimeError("Sparkplug data before the node's birth: the service must wait for "
                                   "births() and may_publish()")
            out = self._birth_sequence(now)
        else:
            out = []
        run = []
        for sample in samples:
            if run and (sample.address != run[0].address or len(run) >= MAX_METRICS):
                out += self._device_data(run, now)
                run = []
            run.append(sample)
        if run:
            out += self._device_data(run, now)
        return out

    def device_lost(self, address, now):
        self._lost.add(address)
        if address not in self._born or not self.may_publish():
            self._born.pop(address, None)
            return []
        device_id = self._born.pop(address)[0]
        out = [self._message(self.device_topic("DDEATH", device_id), now, [])]
        return out + self._status_data(now)

    def device_back(self, address, now):
        self._lost.discard(address)
        if not self._node_born or not self.may_publish() or self.door.device(address) is None:
            return []
        return self._device_birth(address, self._device_ids(), now) + self._status_data(now)

    # ------------------------------------------------------------------ messages
    def _message(self, topic, now, metrics, first=False, qos=0):
        self._seq = 0 if first else (self._seq + 1) % 256
        return Message(topic, pb.encode_payload(now, metrics, self._seq), qos, False)

    def _birth_sequence(self, now):
        """NBIRTH (seq 0) then one DBIRTH per present meter."""
        self._born = {}
        identity = self.door.identity()
        metrics = [pb.Metric(BDSEQ, timestamp=now, datatype=pb.INT64, value=self._bdseq),
                   pb.Metric(REBIRTH, timestamp=now, datatype=pb.BOOLEAN, value=False)]
        for alias, (name, datatype, key) in enumerate(NODE_PROPERTIES, 1):
            metrics.append(pb.Metric(name, alias, now, datatype, str(identity.get(key) or "")))
        ids = self._device_ids()
        present = [d.address for d in self.door.devices() if self._present(d.address)]
        self._status = {}
        for alias, (name, datatype, function) in enumerate(NODE_STATUS, STATUS_ALIAS0):
            value = len(present) if name == "Status/Devices online" else function(self)
            self._status[name] = value
            metrics.append(pb.Metric(name, alias, now, datatype, value))
        out = [self._message(self.node_topic("NBIRTH"), now, metrics, first=True)]
        self._node_born = True
        for address in present:
            out += self._device_birth(address, ids, now)
        return out

    def _present(self, address):
        return address not in self._lost and self.door.device_link(address) not in (devstate.COMM_LOST,
                                                                                       devstate.ABSENT)

    def _alias(self, address, load, key):
        if key in _ROW:
            return address << 24 | load << 12 | (_ROW[key] + 1)
        ident = (address, load, key)
        if ident not in self._extra_alias:
            used = sum(1 for a, lo, _k in self._extra_alias if a == address and lo == load)
            self._extra_alias[ident] = address << 24 | load << 12 | (EXTRA_ALIAS0 + used)
        return self._extra_alias[ident]

    def _device_birth(self, address, ids, now):
        snapshot = self.door.snapshot(address)
        values = {}
        for load, readings in snapshot.items():
            for key, reading in readings.items():
                values[(load, key)] = (reading.value, reading.timestamp, reading.quality)
        for ident in self._extra.get(address, ()):
            values.setdefault(ident, (None, None, None))
        aliases, metrics = {}, []
        for load, key in sorted(values, key=lambda lk: (lk[0], _ROW.get(lk[1], len(_ROW)), lk[1])):
            value, ts, quality = values[(load, key)]
            datatype = datatype_of(key, value)
            alias = aliases[(load, key)] = self._alias(address, load, key)
            code = quality_code(quality) if value is not None else QUALITY_BAD
            properties = []
            unit = unit_of(key)
            if unit:
                properties.append((UNIT_PROPERTY, pb.STRING, unit))
            properties.append((QUALITY_PROPERTY, pb.INT32, code))
            self._last_quality[(address, load, key)] = code
            metrics.append(pb.Metric(metric_name(load, key), alias, _ms(ts) or now, datatype,
                                     wire_value(datatype, value), False, tuple(properties)))
        device_id = ids.get(address, "device-%d" % address)
        self._born[address] = (device_id, now, aliases)
        return [self._message(self.device_topic("DBIRTH", device_id), now, metrics)]

    def _device_data(self, samples, now):
        address = samples[0].address
        out = []
        born = self._born.get(address)
        unknown = [s for s in samples if born is None or (s.load, s.key) not in born[2]]
        if unknown:
            if self.door.device(address) is None:
                log.info("sparkplug: %d sample(s) of device %d, not in the topology, dropped",
                         len(samples), address)
                return []
            self._extra.setdefault(address, set()).update((s.load, s.key) for s in unknown)
            self._lost.discard(address)
            out += self._device_birth(address, self._device_ids(), now)
            if born is None:
                out += self._status_data(now)
            born = self._born[address]
        device_id, birth_ms, aliases = born
        metrics = []
        for sample in samples:
            ident = (address, sample.load, sample.key)
            historical = bool(sample.history) or sample.t < birth_ms
            code = quality_code(sample.quality) if sample.value is not None else QUALITY_BAD
            properties = ()
            if code != QUALITY_GOOD or self._last_quality.get(ident, QUALITY_GOOD) != QUALITY_GOOD:
                properties = ((QUALITY_PROPERTY, pb.INT32, code),)
            if curve_flags(sample.quality):
                properties += ((FLAGS_PROPERTY, pb.STRING, sample.quality),)
            if not historical:
                self._last_quality[ident] = code
            datatype = datatype_of(sample.key, sample.value)
            metrics.append(pb.Metric(None, aliases[(sample.load, sample.key)], sample.t, datatype,
                                     wire_value(datatype, sample.value), historical, properties, False))
        out.append(self._message(self.device_topic("DDATA", device_id), now, metrics, qos=self._data_qos()))
        return out

    def _data_qos(self):
        try:
            return 1 if int(self.settings(SETTING_QOS)) == 1 else 0
        except (KeyError, TypeError, ValueError):
            return 0

    def _status_data(self, now):
        """NDATA with the node's status metrics that changed since the last NBIRTH or NDATA."""
        metrics = []
        for alias, (name, datatype, function) in enumerate(NODE_STATUS, STATUS_ALIAS0):
            value = function(self)
            if self._status.get(name) != value:
                self._status[name] = value
                metrics.append(pb.Metric(None, alias, now, datatype, value, declared=False))
        return [self._message(self.node_topic("NDATA"), now, metrics)] if metrics else []

    # ------------------------------------------------------------------ what comes in
    def _command(self, payload, now):
        try:
            decoded = pb.decode_payload(payload)
        except pb.DecodeError as exc:
            log.warning("sparkplug: malformed NCMD ignored (%s)", exc)
            return []
        rebirth = any(m.name == REBIRTH and m.value is True for m in decoded.metrics)
        if not rebirth:
            log.info("sparkplug: NCMD without a rebirth request ignored")
            return []
        if not self._active or not self.may_publish():
            return []
        log.info("sparkplug: rebirth requested")
        return self._birth_sequence(now)

    def _host_state(self, payload, now):
        try:
            state = json.loads(bytes(payload).decode("utf-8"))
            online, timestamp = state["online"], state["timestamp"]
            if not isinstance(online, bool) or isinstance(timestamp, bool) or \
                    not isinstance(timestamp, (int, float)):
                raise ValueError("online must be a boolean and timestamp a number")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            log.warning("sparkplug: malformed STATE of the primary host ignored (%s)", exc)
            return []
        if self._host_ts is not None and timestamp < self._host_ts:
            return []                        # older than the last one seen (tck-id-...-phid-wait-timestamp)
        self._host_ts = timestamp
        was_online, self._host_online = self._host_online, online
        if online and not was_online and self._active:
            return self._birth_sequence(now)
        if not online and self._node_born:
            # phid-offline: the node stops publishing, says so with its NDEATH (the will's: same bdSeq, no seq)
            # and asks the service for a new connection (reconnect_wanted), whose NBIRTH has the next bdSeq
            self._node_born = False
            self._born = {}
            self._reconnect = True
            return [self.will()]
        return []

