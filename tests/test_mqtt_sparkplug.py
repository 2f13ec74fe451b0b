"""The Sparkplug B mode against the Eclipse Sparkplug 3.0 specification, decoded by an independent decoder.

Every message the mode builds is decoded with Google's protobuf runtime and the sparkplug_b.proto message types
(tests/sparkplug_decoder.py), never with the gateway's own encoder. The expectations are the specification's
rules, cited by their TCK ids, and the physical units of the measurements written here from the standard
(IEC 60050 / SI: volts, amperes, hertz, watts, var, VA, Wh...), not read from the gateway's registry.
"""

import json
import types

import pytest

import sparkplug_decoder as spb
from daemon.state.cache import Reading
from outbound.mqtt import sparkplug_pb
from outbound.mqtt.modes import MODES, Sample
from outbound.mqtt.sparkplug import SparkplugMode

NOW = 1_800_000_000_000           # ms
T0 = (NOW - 5_000) / 1000.0       # the readings' time, s

# Standard name -> (unit, Sparkplug datatype): units from the SI/IEC 60050, datatypes from Sparkplug ch. 6
# "Data Types" — a scaled electrical quantity is a Double, a signed power an Int32, an energy index an unsigned
# 64-bit counter.
EXPECTED = {
    "IV1Inst": ("V", spb.DOUBLE),
    "II1Inst": ("A", spb.DOUBLE),
    "IFreqInst": ("Hz", spb.DOUBLE),
    "IPSumInst": ("W", spb.INT32),
    "IQSumInst": ("var", spb.INT32),
    "ISSumInst": ("VA", spb.UINT32),
    "IEaPInst": ("Wh", spb.UINT64),
    "IErPInst": ("varh", spb.UINT64),
    "IpFSumInst": (None, spb.DOUBLE),
}
# (load, registry key) -> value, quality of the simulated meters' readings
METER_5 = {(1, "v1"): (231.25, "good"), (1, "i1"): (12.5, "good"), (1, "freq"): (50.01, "good"),
           (1, "p"): (-1520, "good"), (1, "q"): (310, "stale"), (1, "s"): (1600, "good"),
           (1, "ea_pos"): (123456789012, "good"), (1, "er_pos"): (None, "good"), (1, "pf"): (-0.95, "good"),
           (2, "i1"): (3.25, "good")}
METER_7 = {(1, "v1"): (229.0, "good")}


class FakeDoor:
    """What the mode reads of the gateway: identity, devices, their snapshot and link state."""

    def __init__(self):
        self.meters = {5: ("DIRIS B-30 / feeder #1+2", METER_5), 7: ("DIRIS B-30@7", METER_7),
                       9: ("Lost meter", {(1, "v1"): (230.0, "comm_lost")})}
        self.links = {5: "ok", 7: "ok", 9: "comm_lost"}

    def identity(self):
        return {"vendor": "OPEN-M70", "product": "M-70", "firmware": "1.2.3", "netid": "0A1B2C",
                "serial": "S123", "name": "Gateway", "location": "Plant 2", "board": "sim"}

    def devices(self):
        return [types.SimpleNamespace(address=a, name=n) for a, (n, _v) in sorted(self.meters.items())]

    def device(self, address):
        return next((d for d in self.devices() if d.address == address), None)

    def device_link(self, address):
        return self.links.get(address, "absent")

    def snapshot(self, address):
        out = {}
        for (load, key), (value, quality) in self.meters[address][1].items():
            out.setdefault(load, {})[key] = Reading(value, T0, quality)
        return out


SETTINGS = {"mqtt.group_id": "Plant", "mqtt.edge_node_id": "", "mqtt.primary_host_id": "", "mqtt.qos": 1}


def make(door=None, **settings):
    values = dict(SETTINGS, **settings)
    return SparkplugMode(door or FakeDoor(), values.__getitem__)


def decoded(messages):
    return [(m.topic, spb.decode(m.payload), m) for m in messages]


def by_name(payload):
    return dict((m.name, m) for m in payload.metrics)


def test_the_mode_is_registered_for_the_setting():
    assert MODES["sparkplug"] is SparkplugMode


def test_will_is_an_ndeath_with_bdseq_only_qos1_not_retained():
    mode = make()
    will = mode.will()
    payload = spb.decode(will.payload)
    assert will.topic == "spBv1.0/Plant/NDEATH/0A1B2C"            # edge node id defaults to the NET ID
    assert (will.qos, will.retain) == (1, False)                  # tck-id-...-will-message-qos / -will-retained
    assert not payload.HasField("seq")                            # tck-id-topics-ndeath-seq
    assert [m.name for m in payload.metrics] == ["bdSeq"]         # tck-id-topics-ndeath-payload
    assert payload.metrics[0].datatype == spb.INT64 and spb.metric_value(payload.metrics[0]) == 0


def test_nbirth_then_one_dbirth_per_present_meter():
    mode = make()
    will = spb.decode(mode.will().payload)
    out = decoded(mode.births(NOW))
    topics = [t for t, _p, _m in out]
    assert topics == ["spBv1.0/Plant/NBIRTH/0A1B2C",
                      "spBv1.0/Plant/DBIRTH/0A1B2C/DIRIS B-30 _ feeder _1_2",     # + / # are reserved
                      "spBv1.0/Plant/DBIRTH/0A1B2C/DIRIS B-30@7"]                # 9 is comm_lost: no birth
    assert all((m.qos, m.retain) == (0, False) for _t, _p, m in out)             # tck-id-topics-*birth-mqtt
    assert [p.seq for _t, p, _m in out] == [0, 1, 2]                             # NBIRTH seq 0, then +1
    assert all(p.timestamp == NOW for _t, p, _m in out)
    nbirth = by_name(out[0][1])
    assert spb.metric_value(nbirth["bdSeq"]) == spb.metric_value(will.metrics[0])   # tck-id-...-bdseq-matching
    assert nbirth["bdSeq"].datatype == spb.INT64
    rebirth = nbirth["Node Control/Rebirth"]
    assert (rebirth.datatype, rebirth.boolean_value, rebirth.HasField("alias")) == (spb.BOOLEAN, False, False)
    assert nbirth["Properties/Hardware Make"].string_value == "OPEN-M70"
    assert nbirth["Properties/NET ID"].string_value == "0A1B2C"
    assert spb.metric_value(nbirth["Status/Devices"]) == 3
    assert spb.metric_value(nbirth["Status/Devices online"]) == 2
    for metric in out[0][1].metrics:                                             # name, datatype, value, time
        assert metric.name and metric.HasField("datatype") and metric.WhichOneof("value")
        assert metric.timestamp == NOW


def test_dbirth_metrics_names_datatypes_units_quality_and_aliases():
    mode = make()
    mode.will()
    out = decoded(mode.births(NOW))
    dbirth = out[1][1]
    metrics = by_name(dbirth)
    names = set(metrics)
    assert {"Load 1/" + std for std in EXPECTED} <= names
    assert "Load 2/II1Inst" in names
    assert len(names) == len(METER_5)
    for std, (unit, datatype) in EXPECTED.items():
        metric = metrics["Load 1/" + std]
        props = spb.properties(metric)
        assert metric.datatype == datatype, std
        assert props.get("engUnit") == unit, std
        assert metric.timestamp == int(T0 * 1000)
    assert spb.metric_value(metrics["Load 1/IV1Inst"]) == 231.25
    assert spb.metric_value(metrics["Load 1/IPSumInst"]) == -1520                # signed, two's complement
    assert spb.metric_value(metrics["Load 1/IEaPInst"]) == 123456789012
    assert spb.metric_value(metrics["Load 1/IpFSumInst"]) == pytest.approx(-0.95)
    # Quality codes of ch. 6 "Quality Codes": 192 GOOD, 500 STALE, 0 BAD (a value never read is null and BAD)
    assert spb.properties(metrics["Load 1/IV1Inst"])["Quality"] == 192
    assert spb.properties(metrics["Load 1/IQSumInst"])["Quality"] == 500
    assert metrics["Load 1/IErPInst"].is_null and spb.properties(metrics["Load 1/IErPInst"])["Quality"] == 0
    # every alias unique across the node's births (tck-id-payloads-alias-uniqueness)
    aliases = [m.alias for _t, p, _m in out for m in p.metrics if m.HasField("alias")]
    assert len(aliases) == len(set(aliases))
    assert all(m.HasField("alias") for m in dbirth.metrics)                      # both name and alias in births


def live(address, load, key, value, t, quality="good", history=False):
    return Sample(t, address, load, key, value, quality, history)


def test_ddata_uses_aliases_sample_timestamps_quality_and_history_flags():
    mode = make()
    mode.will()
    births = decoded(mode.births(NOW))
    alias = dict((m.name, m.alias) for m in births[1][1].metrics)
    samples = [live(5, 1, "v1", 232.5, NOW + 1000),
               live(5, 1, "p", -2000, NOW + 1000, "stale"),
               live(5, 1, "p", 100, NOW + 2000),                      # good again: says so
               live(5, 1, "ea_pos", 123456790000, NOW - 60_000, history=True),
               live(5, 1, "i1", 12.0, NOW - 3000),                    # acquired before the birth (spooled)
               live(7, 1, "v1", 228.5, NOW + 1500)]
    out = decoded(mode.encode(samples, NOW + 3000))
    assert [t for t, _p, _m in out] == ["spBv1.0/Plant/DDATA/0A1B2C/DIRIS B-30 _ feeder _1_2",
                                        "spBv1.0/Plant/DDATA/0A1B2C/DIRIS B-30@7"]
    assert [p.seq for _t, p, _m in out] == [3, 4]
    # DDATA carries the spool's samples: QoS 1 by mqtt.qos (store and forward), never retained
    assert all((m.qos, m.retain) == (1, False) for _t, _p, m in out)
    first = out[0][1].metrics
    for metric in first:                                       # tck-id-payloads-alias-data-cmd-requirement
        assert not metric.HasField("name") and not metric.HasField("datatype")
    assert [m.alias for m in first] == [alias["Load 1/IV1Inst"], alias["Load 1/IPSumInst"],
                                        alias["Load 1/IPSumInst"], alias["Load 1/IEaPInst"], alias["Load 1/II1Inst"]]
    assert [m.timestamp for m in first] == [s.t for s in samples[:5]]
    assert [m.is_historical for m in first] == [False, False, False, True, True]
    assert spb.signed(first[1].int_value, 32) == -2000
    assert spb.properties(first[0]) == {}                       # GOOD needs no Quality property
    assert spb.properties(first[1]) == {"Quality": 500}
    assert spb.properties(first[2]) == {"Quality": 192}
    assert first[3].long_value == 123456790000
    assert first[0].double_value == 232.5


def test_a_metric_not_in_the_birth_makes_a_new_dbirth_first():
    mode = make()
    mode.will()
    mode.births(NOW)
    out = decoded(mode.encode([live(7, 1, "lc_p_pos", 4000, NOW - 600_000, history=True)], NOW + 10))
    assert [t.split("/")[2] for t, _p, _m in out] == ["DBIRTH", "DDATA"]
    names = by_name(out[0][1])
    assert "Load 1/IPPositiveHistory" in names and "Load 1/IV1Inst" in names
    assert out[1][1].metrics[0].alias == names["Load 1/IPPositiveHistory"].alias
    assert out[1][1].metrics[0].is_historical


def test_logged_points_quality_flags_and_missing_values():
    mode = make()
    mode.will()
    births = decoded(mode.births(NOW))
    alias = dict((m.name, m.alias) for m in births[1][1].metrics)
    samples = [live(5, 1, "ea_pos", 123450000000, NOW - 7_200_000, "backfilled+clock_not_set", True),
               live(5, 1, "ea_pos", None, NOW - 3_600_000, "missing", True),
               live(5, 1, "ea_pos", 123460000000, NOW - 1_800_000, "good", True)]
    metrics = spb.decode(mode.encode(samples, NOW + 1)[0].payload).metrics
    assert [m.alias for m in metrics] == [alias["Load 1/IEaPInst"]] * 3
    assert all(m.is_historical for m in metrics)
    assert spb.properties(metrics[0]) == {"Quality Flags": "backfilled+clock_not_set"}     # valid: GOOD
    assert metrics[1].is_null and spb.properties(metrics[1]) == {"Quality": 0}
    assert spb.metric_value(metrics[2]) == 123460000000 and spb.properties(metrics[2]) == {}


def test_seq_counts_every_message_and_wraps_after_255():
    mode = make()
    mode.will()
    seqs = [spb.decode(m.payload).seq for m in mode.births(NOW)]
    for n in range(300):
        seqs += [spb.decode(m.payload).seq for m in mode.encode([live(7, 1, "v1", 200 + n, NOW + n)], NOW + n)]
    seqs += [spb.decode(m.payload).seq for m in mode.device_lost(7, NOW + 400)]
    assert seqs[0] == 0
    # tck-id-payloads-sequence-num-incrementing
    assert all(b == (a + 1) % 256 for a, b in zip(seqs, seqs[1:], strict=False))
    assert max(seqs) == 255 and seqs.count(0) == 2


def test_bdseq_increments_per_connection_survives_restarts_and_wraps():
    mode = make()
    seen = []
    for _ in range(3):
        will = spb.decode(mode.will().payload)
        nbirth = by_name(spb.decode(mode.births(NOW)[0].payload))
        assert spb.metric_value(nbirth["bdSeq"]) == spb.metric_value(will.metrics[0])
        seen.append(spb.metric_value(will.metrics[0]))
        mode.session_ended()
    assert seen == [0, 1, 2]                                    # tck-id-topics-nbirth-bdseq-increment
    # the service's order: state saved, then the will on the wire, then SIGKILL: the broker still holds bdSeq 3,
    # the next process must not use it again
    saved = json.loads(json.dumps(mode.state()))
    assert spb.metric_value(spb.decode(mode.will().payload).metrics[0]) == 3
    mode.births(NOW)
    again = make()
    again.restore(saved)
    saved = json.loads(json.dumps(again.state()))
    assert spb.metric_value(spb.decode(again.will().payload).metrics[0]) == 4
    assert spb.metric_value(by_name(spb.decode(again.births(NOW)[0].payload))["bdSeq"]) == 4
    # killed during the back-off after that connection dropped: the restart goes on from 5
    again.session_ended()
    restarted = make()
    restarted.restore(saved)
    assert spb.metric_value(spb.decode(restarted.will().payload).metrics[0]) == 5
    # 255 -> 0, on a reconnection and across a restart
    wrap = make()
    wrap.restore({"bdSeq": 254})
    assert spb.metric_value(spb.decode(wrap.will().payload).metrics[0]) == 255
    assert wrap.state() == {"bdSeq": 255}
    wrap.session_ended()
    assert spb.metric_value(spb.decode(wrap.will().payload).metrics[0]) == 0
    late = make()
    late.restore({"bdSeq": 255})
    assert spb.metric_value(spb.decode(late.will().payload).metrics[0]) == 0
    broken = make()
    broken.restore({"bdSeq": "x"})
    assert spb.metric_value(spb.decode(broken.will().payload).metrics[0]) == 0


def test_ncmd_rebirth_sends_the_birth_sequence_again_with_the_same_bdseq():
    mode = make()
    mode.will()
    first = decoded(mode.births(NOW))
    mode.encode([live(5, 1, "v1", 230.0, NOW + 1)], NOW + 1)
    topic = "spBv1.0/Plant/NCMD/0A1B2C"
    assert ("spBv1.0/Plant/NCMD/0A1B2C", 1) in mode.subscriptions()        # tck-id-...-ncmd-subscribe (QoS 1)
    again = decoded(mode.incoming(topic, spb.ncmd([("Node Control/Rebirth", spb.BOOLEAN, True)], NOW + 5),
                                  NOW + 10))
    assert [t for t, _p, _m in again] == [t for t, _p, _m in first]
    assert [p.seq for _t, p, _m in again] == [0, 1, 2]
    assert spb.metric_value(by_name(again[0][1])["bdSeq"]) == spb.metric_value(by_name(first[0][1])["bdSeq"])
    # not a rebirth request, malformed, or for another node: nothing
    assert mode.incoming(topic, spb.ncmd([("Node Control/Rebirth", spb.BOOLEAN, False)], NOW), NOW) == []
    assert mode.incoming(topic, spb.ncmd([("Node Control/Reboot", spb.BOOLEAN, True)], NOW), NOW) == []
    assert mode.incoming(topic, b"\x0a\xff\xff", NOW) == []
    assert mode.incoming(topic, b"\x12\x05\x0a\x03ab", NOW) == []
    assert mode.incoming("spBv1.0/Plant/NCMD/other", spb.ncmd([("Node Control/Rebirth", spb.BOOLEAN, True)],
                                                                NOW), NOW) == []
    # the sequence goes on from the rebirth
    nxt = mode.encode([live(5, 1, "v1", 231.0, NOW + 20)], NOW + 20)
    assert spb.decode(nxt[0].payload).seq == 3


def state(online, timestamp):
    return json.dumps({"online": online, "timestamp": timestamp}).encode()


def test_primary_host_state_gates_births_and_data():
    mode = make(**{"mqtt.primary_host_id": "scada-1"})
    topic = "spBv1.0/STATE/scada-1"
    assert (topic, 1) in mode.subscriptions()
    mode.will()
    assert not mode.may_publish()
    assert mode.births(NOW) == []                                # tck-id-...-phid-wait
    with pytest.raises(RuntimeError):
        mode.encode([live(5, 1, "v1", 230.0, NOW)], NOW)
    assert mode.incoming("spBv1.0/STATE/scada-2", state(True, 100), NOW) == []      # another host
    assert mode.incoming(topic, b"{not json", NOW) == []
    assert mode.incoming(topic, json.dumps({"online": "yes", "timestamp": 1}).encode(), NOW) == []
    assert not mode.may_publish()
    births = decoded(mode.incoming(topic, state(True, 100), NOW + 1))
    assert mode.may_publish()
    assert [t.split("/")[2] for t, _p, _m in births] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    assert births[0][1].seq == 0
    assert mode.incoming(topic, state(True, 100), NOW + 2) == []                    # already online
    assert mode.incoming(topic, state(False, 50), NOW + 2) == []                    # older: ignored
    assert mode.may_publish()
    death = mode.incoming(topic, state(False, 200), NOW + 3)        # tck-id-...-phid-offline: NDEATH
    assert [(m.topic, m.qos, m.retain) for m in death] == [("spBv1.0/Plant/NDEATH/0A1B2C", 1, False)]
    assert not spb.decode(death[0].payload).HasField("seq")
    assert spb.metric_value(spb.decode(death[0].payload).metrics[0]) == mode.bdseq()
    assert not mode.may_publish()
    assert mode.incoming(topic, state(False, 250), NOW + 3) == []                   # already offline
    again = decoded(mode.incoming(topic, state(True, 300), NOW + 4))                 # back: births again
    assert [t.split("/")[2] for t, _p, _m in again] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    # a new connection waits for the (retained) STATE again
    mode.session_ended()
    assert not mode.may_publish()


def test_device_lost_and_back():
    door = FakeDoor()
    mode = make(door)
    mode.will()
    mode.births(NOW)
    lost = decoded(mode.device_lost(7, NOW + 10))
    assert [t for t, _p, _m in lost] == ["spBv1.0/Plant/DDEATH/0A1B2C/DIRIS B-30@7",
                                         "spBv1.0/Plant/NDATA/0A1B2C"]
    ddeath = lost[0][1]
    assert ddeath.seq == 3 and ddeath.timestamp == NOW + 10 and len(ddeath.metrics) == 0
    ndata = lost[1][1]
    assert ndata.seq == 4 and [spb.metric_value(m) for m in ndata.metrics] == [1]
    assert not ndata.metrics[0].HasField("name") and ndata.metrics[0].HasField("alias")
    assert mode.device_lost(7, NOW + 11) == []                   # already dead
    door.links[7] = "comm_lost"
    mode.session_ended()
    mode.will()
    assert len(mode.births(NOW + 20)) == 2                       # no DBIRTH for a lost meter
    door.links[7] = "ok"
    back = decoded(mode.device_back(7, NOW + 30))
    assert [t.split("/")[2] for t, _p, _m in back] == ["DBIRTH", "NDATA"]
    assert [p.seq for _t, p, _m in back] == [2, 3]
    assert spb.metric_value(back[1][1].metrics[0]) == 2


def test_unknown_device_samples_are_dropped_and_names_are_unique():
    door = FakeDoor()
    door.meters[8] = ("DIRIS B-30@7", {(1, "v1"): (1.0, "good")})
    door.links[8] = "ok"
    mode = make(door, **{"mqtt.edge_node_id": "edge/1", "mqtt.group_id": "G#1"})
    mode.will()
    topics = [m.topic for m in mode.births(NOW)]
    assert topics[0] == "spBv1.0/G_1/NBIRTH/edge_1"
    assert "spBv1.0/G_1/DBIRTH/edge_1/DIRIS B-30@7" in topics
    assert "spBv1.0/G_1/DBIRTH/edge_1/DIRIS B-30@7@8" in topics
    assert mode.encode([live(99, 1, "v1", 1.0, NOW)], NOW) == []


def test_hand_written_encoder_round_trips_through_protobuf():
    metrics = [sparkplug_pb.Metric("a", 1, 5, sparkplug_pb.INT64, -7),
               sparkplug_pb.Metric("b", 2, 5, sparkplug_pb.FLOAT, 1.5),
               sparkplug_pb.Metric("c", 3, 5, sparkplug_pb.STRING, "é/ü"),
               sparkplug_pb.Metric("d", 4, 5, sparkplug_pb.UINT64, 2 ** 64 - 1),
               sparkplug_pb.Metric("e", 2 ** 40, 5, sparkplug_pb.INT16, -300, True,
                                   (("x", sparkplug_pb.DOUBLE, 2.5), ("n", sparkplug_pb.STRING, None)))]
    payload = spb.decode(sparkplug_pb.encode_payload(NOW, metrics, 255))
    assert payload.seq == 255 and payload.timestamp == NOW
    assert [spb.metric_value(m) for m in payload.metrics] == [-7, 1.5, "é/ü", 2 ** 64 - 1, -300]
    assert payload.metrics[4].alias == 2 ** 40 and payload.metrics[4].is_historical
    assert payload.metrics[4].properties.values[1].is_null
    assert spb.properties(payload.metrics[4])["x"] == 2.5
    assert not payload.ListFields()[0][0].name == "seq"


@pytest.mark.parametrize("data", [b"\x08", b"\x0a\x05ab", b"\x00\x01", b"\x0b", b"\x08" + b"\xff" * 11,
                                  b"\x12\x02\x0a\x01", b"\x12\x03\x7a\x01\xff"])
def test_the_ncmd_decoder_refuses_malformed_payloads(data):
    with pytest.raises(sparkplug_pb.DecodeError):
        sparkplug_pb.decode_payload(data)
