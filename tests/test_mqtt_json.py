"""The JSON payload mode and the MQTT settings' rules, without a broker (outbound/mqtt/modes.py, config.py).

Topic names are checked against MQTT 3.1.1 §4.7 (a level holds no "/", "+", "#"; no empty level), PEM against
RFC 7468 (base64 lines of 64 characters between the BEGIN and END lines)."""

import json
import os

from daemon.state import devstate
from outbound.mqtt import config
from outbound.mqtt.modes import DEFAULT_TEMPLATE, MODES, JsonMode, Sample, template_problem


class Device:
    def __init__(self, address, name, uid, reference="U-30"):
        self.address, self.name, self.uid, self.reference = address, name, uid, reference


class Door:
    """What JsonMode asks of the door, for two devices (one lost)."""

    def __init__(self):
        self.table = {4: Device(4, "Boiler/room #2 +x", "DC85E9", "I-35"), 11: Device(11, "Main", "D5038A")}

    def identity(self):
        return {"netid": "86C657", "name": "M-70", "firmware": "1.0"}

    def devices(self):
        return [self.table[a] for a in sorted(self.table)]

    def device(self, address):
        return self.table.get(address)

    def device_link(self, address):
        return devstate.COMM_LOST if address == 4 else devstate.OK


SETTINGS = {"push.site_name": "plant", "push.server_name": "", "mqtt.topic_template": DEFAULT_TEMPLATE, "mqtt.qos": 1}


def mode(**changes):
    settings = dict(SETTINGS, **changes)
    return JsonMode(Door(), settings.get)


def valid_topic(topic):
    return all(level and not set(level) & set("+#") for level in topic.split("/"))


def test_samples_become_one_message_each_on_the_template_live_retained_history_not():
    samples = [Sample(1_700_000_000_000, 4, 2, "v1", 231.5, "good", False),
               Sample(1_700_000_600_000, 11, 0, "lc_p_pos", 1200, "backfilled", True)]
    out = mode().encode(samples, 1_700_000_001_000)
    assert [m.topic for m in out] == ["plant/86C657/Boiler_room _2 _x/2/v1", "plant/86C657/Main/0/lc_p_pos"]
    assert all(valid_topic(m.topic) for m in out)
    assert json.loads(out[0].payload) == {"value": 231.5, "unit": "V", "timestamp": 1_700_000_000_000,
                                          "quality": "good"}
    assert json.loads(out[1].payload) == {"value": 1200, "unit": "W", "timestamp": 1_700_000_600_000,
                                          "quality": "backfilled", "history": True}
    assert [(m.qos, m.retain) for m in out] == [(1, True), (1, False)]
    other = mode(**{"mqtt.topic_template": "m70/{uid}/{address}/{load}/{measurement}", "mqtt.qos": 0})
    assert [(m.topic, m.qos) for m in other.encode(samples[:1], 0)] == [("m70/DC85E9/4/2/v1", 0)]


def test_status_topics_births_and_the_will():
    json_mode = mode()
    will = json_mode.will()
    assert (will.topic, json.loads(will.payload), will.retain) == ("plant/86C657/status", {"online": False}, True)
    births = json_mode.births(5)
    assert [(m.topic, json.loads(m.payload)["online"]) for m in births] == [
        ("plant/86C657/status", True), ("plant/86C657/Boiler_room _2 _x/status", False),
        ("plant/86C657/Main/status", True)]
    assert [json.loads(m.payload)["online"] for m in json_mode.device_lost(11, 6) + json_mode.device_back(11, 7)] \
        == [False, True]
    assert json_mode.subscriptions() == [] and json_mode.may_publish() and json_mode.incoming("x", b"", 1) == []
    assert MODES["json"] is JsonMode


def test_templates_are_refused_when_they_cannot_name_one_topic_per_value():
    assert template_problem(DEFAULT_TEMPLATE) is None
    assert template_problem("{site}/{uid}/{load}/{measurement}") is None
    for bad in ("{site}/{device}/{measurement}", "{site}/{nope}/{device}/{load}/{measurement}",
                "a/+/{device}/{load}/{measurement}", "a//{device}/{load}/{measurement}", "{device}/{load}/{measure",
                "$SYS/{device}/{load}/{measurement}"):
        assert template_problem(bad) is not None, bad


def test_pem_is_read_with_or_without_its_line_breaks():
    body = "A" * 100
    pem = "-----BEGIN CERTIFICATE-----\n%s\n%s\n-----END CERTIFICATE-----\n" % (body[:64], body[64:])
    for pasted in (pem, pem.replace("\n", ""), pem.replace("\n", " ")):
        assert config.pem_blocks(pasted) == [("CERTIFICATE", pem)]


def test_the_rules_across_settings():
    base = {"mqtt.topic_template": DEFAULT_TEMPLATE, "mqtt.group_id": "M70", "mqtt.edge_node_id": "",
            "mqtt.primary_host_id": "", "mqtt.client_id": "", "mqtt.client_cert": "", "mqtt.client_key": "",
            "mqtt.tls": True, "mqtt.password": "", "mqtt.user": "", "mqtt.enabled": True, "mqtt.host": "broker"}
    assert config.problems(base.get) == []
    cases = ({"mqtt.edge_node_id": "a+b"}, {"mqtt.password": "x"}, {"mqtt.host": ""},
             {"mqtt.client_key": "-----BEGIN PRIVATE KEY-----AAAA-----END PRIVATE KEY-----"})
    fields = ("mqtt.edge_node_id", "mqtt.user", "mqtt.host", "mqtt.client_cert")      # a key wants its certificate
    for change, field in zip(cases, fields, strict=True):
        assert [f for f, _m in config.problems(dict(base, **change).get)] == [field], change


def test_the_json_mode_does_not_load_sparkplug():
    """Issue 19 (lean): a gateway publishing JSON does not import the Sparkplug B modules (counted in a fresh
    interpreter's sys.modules); asking for the Sparkplug mode still loads it."""
    import subprocess
    import sys
    code = ("import sys; from outbound.mqtt.modes import MODES; MODES['json']; "
            "a = [m for m in sys.modules if m.startswith('outbound.mqtt.sparkplug')]; "
            "MODES['sparkplug']; b = [m for m in sys.modules if m.startswith('outbound.mqtt.sparkplug')]; "
            "print(len(a), len(b), sorted(MODES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.split(None, 2)
    assert out[0] == "0" and int(out[1]) >= 1 and out[2].strip() == "['json', 'sparkplug']"
