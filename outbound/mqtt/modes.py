"""The MQTT publisher's payload modes: what goes on the wire, and nothing else.

The service (outbound/mqtt/service.py) owns the connection, the spool and QoS; a mode turns samples and session
events into ``Message``s. Modes are pure: no I/O, no clock reads except the ``now`` they are given (Unix ms), so
they are tested without a broker. The interface is fixed for both modes (JSON here, Sparkplug B in
outbound/mqtt/sparkplug.py); a mode that keeps state across restarts (Sparkplug's bdSeq) gives it as ``state()``
and takes it back with ``restore()``: the service persists it.
"""

import collections
import collections.abc
import json
import string

from core import registry
from daemon.state import devstate
from outbound.mqtt import jsontext

Message = collections.namedtuple("Message", "topic payload qos retain")           # payload: bytes
# t: Unix ms of the value; address: device address; load: load number (0 for the device itself); key: registry
# key; value: float/int/bool or None; quality: the door's quality name; history: a logged-curve point (True)
# or a live value (False).
Sample = collections.namedtuple("Sample", "t address load key value quality history")

# What a topic template may name; {device} is the device's name, {uid} its NET ID (or reference + serial).
TOPIC_FIELDS = ("site", "server", "device", "uid", "address", "load", "measurement")
DEFAULT_TEMPLATE = "{site}/{server}/{device}/{load}/{measurement}"
_PER_SAMPLE = ("load", "measurement")               # fields that differ from one value of a device to the next
_PER_DEVICE = ("device", "uid", "address")
# Characters a topic level may not hold (MQTT 3.1.1 §4.7: wildcards, the level separator, NUL).
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def template_problem(template):
    """None when ``template`` is a usable topic template, else why not (English): known fields only, one
    topic per value (names a device, a load and a measurement), no wildcard, no empty level."""
    try:
        fields = [name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return "the template is not well formed: %s" % exc
    unknown = [name for name in fields if name not in TOPIC_FIELDS]
    if unknown:
        return "unknown field {%s}; the fields are %s" % (unknown[0], ", ".join("{%s}" % f for f in TOPIC_FIELDS))
    if "load" not in fields or "measurement" not in fields or not set(_PER_DEVICE) & set(fields):
        return "the template must name {load}, {measurement} and one of {device}, {uid}, {address}"
    if "+" in template or "#" in template or template.startswith("$"):
        return "a topic may not hold the wildcards + and # nor start with $"
    if "" in template.split("/"):
        return "a topic level may not be empty"
    return None


def _level(value):
    return (str(value).translate(_UNSAFE) or "_")


class Mode:
    """One payload mode. The service owns the connection, the spool and QoS; the mode only builds messages."""

    def __init__(self, door, settings):
        self.door = door                  # the mqtt caller's Door (devices(), device(), reading(), identity()...)
        self.settings = settings          # name -> value, the mqtt.* settings

    def will(self):
        """The MQTT last will of the next connection, or None."""
        return None

    def subscriptions(self):
        """[(topic filter, qos)] to subscribe to after connecting."""
        return []

    def may_publish(self):
        """False while the mode waits for something before publishing (Sparkplug: the primary host's STATE)."""
        return True

    def reconnect_wanted(self):
        """True when the mode asks for a new connection after what it just answered (Sparkplug: the primary host
        went offline; the node has said its NDEATH and connects again, with the next bdSeq). Not a failure."""
        return False

    def incoming(self, topic, payload, now):
        """Messages to send in answer to a received message; [] when it is ignored."""
        return []

    def births(self, now):
        """What goes first on each session start, before anything else."""
        return []

    def encode(self, samples, now):
        """Live and historical samples -> messages, in order."""
        raise NotImplementedError

    def device_lost(self, address, now):
        return []

    def device_back(self, address, now):
        return []

    def session_ended(self):
        """The connection dropped."""

    def state(self):
        """What must survive a restart (a JSON-able dict)."""
        return {}

    def restore(self, state):
        """Take back what ``state()`` gave before a restart."""


# issue 19 (lean): the payloads' one encoder (json.dumps(..., sort_keys=True) builds a new JSONEncoder per
# message); the same options, so the same bytes.
_SORTED_JSON = json.JSONEncoder(sort_keys=True)
TOPIC_CACHE_DEVICES = 1024            # devices' topic formats kept (a renamed device makes a new one)


class JsonMode(Mode):
    """Plain JSON on readable topics: one message per value on the topic template, with value, unit, timestamp
    (Unix ms) and quality; live values retained (a new subscriber gets the last one at once), logged-curve points
    not (they carry ``"history": true``). The gateway's and each device's online state are retained status topics:
    the gateway's is also the will, so a gateway that vanishes reads "offline"."""

    def __init__(self, door, settings):
        Mode.__init__(self, door, settings)
        self._topics = {}                 # (template, names, device's names) -> the device's topic format

    def _names(self):
        get = self.settings
        identity = self.door.identity()
        return {"site": _level(get("push.site_name")),
                "server": _level(get("push.server_name") or identity["netid"])}

    def _device_fields(self, address):
        device = self.door.device(address)
        if device is None:
            return {"device": "%d" % address, "uid": "%d" % address, "address": "%d" % address}
        return {"device": _level(device.name), "uid": _level(device.uid), "address": "%d" % address}

    def _prefix(self, fields, stop):
        """The template's levels before the first level naming one of ``stop`` (the status topics' parent)."""
        levels = []
        for level in self.settings("mqtt.topic_template").split("/"):
            if any("{%s}" % name in level for name in stop):
                break
            levels.append(level.format(**fields))
        return levels

    def gateway_status_topic(self):
        return "/".join(self._prefix(dict(self._names()), _PER_DEVICE + _PER_SAMPLE) + ["status"])

    def device_status_topic(self, address):
        fields = dict(self._names(), **self._device_fields(address))
        return "/".join(self._prefix(fields, _PER_SAMPLE) + ["status"])

    def _status(self, topic, online, now, **extra):
        payload = dict(extra, online=online, timestamp=now)
        return Message(topic, json.dumps(payload, sort_keys=True).encode(), self._qos(), True)

    def _qos(self):
        return int(self.settings("mqtt.qos"))

    def will(self):
        topic = self.gateway_status_topic()
        return Message(topic, json.dumps({"online": False}).encode(), self._qos(), True)

    def births(self, now):
        identity = self.door.identity()
        messages = [self._status(self.gateway_status_topic(), True, now, netid=identity["netid"],
                                 name=identity["name"], firmware=identity["firmware"])]
        for device in self.door.devices():
            online = self.door.device_link(device.address) not in (devstate.COMM_LOST, devstate.ABSENT)
            messages.append(self._status(self.device_status_topic(device.address), online, now,
                                         name=device.name, reference=device.reference, uid=device.uid))
        return messages

    def device_lost(self, address, now):
        return [self._status(self.device_status_topic(address), False, now)]

    def device_back(self, address, now):
        return [self._status(self.device_status_topic(address), True, now)]

    def encode(self, samples, now):
        template, qos = self.settings("mqtt.topic_template"), self._qos()
        names, devices, out = self._names(), {}, []
        for sample in samples:
            topic_format = devices.get(sample.address)
            if topic_format is None:
                topic_format = devices[sample.address] = self._device_format(template, names, sample.address)
            key = sample.key
            unit_measurement = _BY_KEY.get(key)
            if unit_measurement is None:
                unit_measurement = _key_texts(key)
            unit, measurement = unit_measurement
            if type(topic_format) is str:
                topic = topic_format.format(load=sample.load, measurement=measurement)
            else:                               # a template _partial_format does not split: the whole of it
                topic = template.format(load=sample.load, measurement=measurement, **topic_format)
            payload = _payload_text(sample, unit)
            if payload is None:
                payload = {"value": sample.value, "unit": unit, "timestamp": sample.t, "quality": sample.quality}
                if sample.history:
                    payload["history"] = True
                payload = _SORTED_JSON.encode(payload)
            out.append(Message(topic, payload.encode(), qos, not sample.history))
        return out

    def _device_format(self, template, names, address):
        """The template with a device's fields filled in, {load} and {measurement} left (issue 19, target 6: a
        topic was a dict of every field and a format of the whole template per message); kept while the
        template, the site and server names and the device's own names are the same. One string per device:
        a topic per value kept was ~0.9 MB on the reference site."""
        fields = self._device_fields(address)
        identity = (template, names["site"], names["server"], fields["device"], fields["uid"], fields["address"])
        topic_format = self._topics.get(identity)
        if topic_format is None:
            if len(self._topics) >= TOPIC_CACHE_DEVICES:
                self._topics.clear()
            topic_format = self._topics[identity] = _partial_format(template, dict(names, **fields))
        return topic_format


_BY_KEY = {}                    # registry key -> (unit, its topic level): a few hundred keys
_BY_KEY_MAX = 4096              # bounded all the same: a generic device's own keys are the user's


def _key_texts(key):
    try:
        unit = registry.get(key)[registry.UNIT]
    except KeyError:
        unit = ""
    if len(_BY_KEY) >= _BY_KEY_MAX:
        _BY_KEY.clear()
    texts = _BY_KEY[key] = (unit, _level(key))
    return texts


def _partial_format(template, fields):
    """``template`` with the fields of ``fields`` formatted in (as ``str.format`` would, conversion and spec
    included), the others left as they were: ``result.format(load=..., measurement=...)`` is the topic. A spec
    that names a field itself (``{load:>{width}}``) is not split: ``fields`` come back, for the whole format."""
    formatter = string.Formatter()
    out = []
    for literal, name, spec, conversion in formatter.parse(template):
        out.append(_escape(literal))
        if name is None:
            continue
        if spec and "{" in spec:
            return fields
        if name in fields:
            value = formatter.convert_field(fields[name], conversion)
            out.append(_escape(formatter.format_field(value, spec)))
        else:
            out.append("{%s%s%s}" % (name, "!" + conversion if conversion else "", ":" + spec if spec else ""))
    return "".join(out)


def _escape(text):
    return text.replace("{", "{{").replace("}", "}}")


def _payload_text(sample, unit):
    """The JSON payload as ``_SORTED_JSON`` writes it (sorted keys, ", " and ": "), formatted from its fields;
    None when a field is not of the type a sample holds (the encoder then writes it)."""
    value = jsontext.scalar(sample.value)
    if value is None or type(sample.t) is not int or type(sample.quality) is not str or type(unit) is not str:
        return None
    return '{%s"quality": %s, "timestamp": %s, "unit": %s, "value": %s}' % (
        '"history": true, ' if sample.history else "", jsontext.string(sample.quality), int.__repr__(sample.t),
        jsontext.string(unit), value)


class _Modes(collections.abc.Mapping):
    """``MODES[name]``: the mode class the setting mqtt.mode names. Sparkplug B's is imported when first asked
    for (outbound/mqtt/sparkplug.py imports this module), and only while its module exists."""

    def _table(self):
        table = {"json": JsonMode}
        try:
            from outbound.mqtt.sparkplug import SparkplugMode
        except ModuleNotFoundError as exc:
            if exc.name != "outbound.mqtt.sparkplug":
                raise
        else:
            table["sparkplug"] = SparkplugMode
        return table

    def __getitem__(self, name):
        if name == "json":
            return JsonMode      # issue 19 (lean): the JSON mode does not load Sparkplug's modules (~0.3 MB)
        return self._table()[name]

    def __iter__(self):
        return iter(self._table())

    def __len__(self):
        return len(self._table())


MODES = _Modes()
