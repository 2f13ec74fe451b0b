"""The MQTT publisher in JSON mode against a real Mosquitto (issue 18), read by an independent paho subscriber.

One gateway (a ManualClock, simulated meters) and one broker for the module's main scenario:
values arrive on the template's topics with value, unit, timestamp and quality matching the simulated meters;
a late subscriber gets the retained last values; the broker is stopped while the meters move and started again:
every sample arrives once, in order, the backlog flagged as history, alarm 6 raised meanwhile and cleared; the
policy's cloud switch turned off closes the connection at once (the gateway's status topic says offline) and
nothing more is published; malformed settings are refused field by field and change nothing.

A second broker, TLS with a test CA and a client certificate required, with a password file: no certificate is
a TLS failure, wrong credentials are alarm 6 with the reason and retries (no crash), a host name the broker's
certificate does not carry is refused, the right ones connect and publish.
"""

import asyncio
import json
import ssl

import pytest
from conftest import polled, resolution, running_gateway, topology_with, wait_for
from mqtt_broker import Mosquitto, Subscriber
from push_servers import Pki

from board.base import ManualClock
from core import registry
from daemon.api import Refused
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from outbound.mqtt.service import MqttService

T0 = 1_700_000_000.0
METERS = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
          {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1, "push.site_name": "plant",
             "push.server_name": "GW1"}
OUTAGE_STEPS = 4
CURVE_PERIODS = {"DC85E9": 10, "D5038A": 10}             # consumption every 10 min


class FastRetry(MqttService):
    """The publisher with a short back-off (the test waits for retries, not minutes)."""
    min_backoff = 0.2
    max_backoff = 1.0


def live(subscriber):
    """[(topic, payload)] of the value messages (not the status topics) as published, in arrival order (a
    retained copy the broker hands a new subscription is not a publication)."""
    return [(t, p) for t, p, retained in subscriber.json("plant/GW1/") if not t.endswith("/status") and not retained]


def device_topic(gw, address, load, key):
    return "plant/GW1/%s/%d/%s" % (gw.topology.device(address).name, load, key)


async def settle(service):
    """Until every sample collected so far is acknowledged by the broker."""
    await wait_for(lambda: service.spool.buffered() == 0 and service.spool.pending() == 0
                   and service.status()["published"] == service.collector.samples, guard=60)


async def start(gw, port, **more):
    await gw.topology.replace(devices_from_simulation(topology_with(METERS, ())))
    settings = {"policy.cloud": True, "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port,
                "mqtt.tls": False, "mqtt.qos": 1}
    settings.update(more)
    await gw.door(Caller("web", "cyber")).set_settings(settings)


def test_json_values_retained_outage_policy_off_and_malformed_settings(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port)
    clock = ManualClock(T0)

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(METERS, ()), OVERRIDES, clock,
                                   services=[FastRetry], curve_overrides=CURVE_PERIODS) as gw:
            service = gw.services[-1]
            await start(gw, broker.port)
            await polled(gw)
            await settle(service)
            await wait_for(lambda: len(live(subscriber)) == service.collector.samples)

            # values on the template's topics, as the meters have them, stamped with the poll's time
            got = dict(live(subscriber))
            checked = 0
            for device in gw.topology.devices:
                meter = gw.board.find_meter(address=device.address)
                for load, readings in gw.cache.snapshot(device.address).items():
                    for key, reading in readings.items():
                        if reading.value is None:
                            continue
                        payload = got[device_topic(gw, device.address, load, key)]
                        assert payload["quality"] == "good" and payload["unit"] == registry.get(key)[registry.UNIT]
                        assert payload["timestamp"] == int(reading.timestamp * 1000)
                        truth = meter.values(load)[key]
                        assert abs(payload["value"] - truth) <= resolution(meter.reference, load, key), key
                        checked += 1
            assert checked > 50 and checked == len(got)

            # a subscriber that comes later gets every last value at once, retained
            late = Subscriber(broker.port, client_id="late", persistent=False)
            await wait_for(lambda: len([m for m in late.snapshot() if not m[0].endswith("/status")]) >= checked)
            retained = dict((t, (json.loads(p), r)) for t, p, r in late.snapshot())
            late.close()
            for topic, payload in got.items():
                assert retained[topic] == (payload, True), topic
            assert retained["plant/GW1/status"][0]["online"] is True

            # the broker goes away while the meters move: spooled, alarm 6 with the reason, nothing lost
            before = len(live(subscriber))
            broker.stop()
            await wait_for(lambda: gw.door(Caller("mqtt")).alarm_active() is not None, guard=30)
            for _ in range(OUTAGE_STEPS):
                clock.advance(1)
                await polled(gw)
            await wait_for(lambda: service.spool.buffered() == 0)
            waiting = service.spool.pending()
            assert waiting > 0 and service.status()["connected"] is False
            alarm = gw.door(Caller("mqtt")).alarm_active()
            assert alarm["text"]["key"] in ("mqtt.error.refused", "mqtt.error.lost"), alarm
            assert dict((n, a) for n, a in gw.alarms.active)[6] == "mqtt"
            broker.start()
            await settle(service)
            await wait_for(lambda: len(live(subscriber)) >= service.collector.samples, guard=60)
            assert gw.door(Caller("mqtt")).alarm_active() is None
            messages = live(subscriber)
            assert len(messages) == len(set((t, p["timestamp"], p["value"]) for t, p in messages))     # each once
            by_topic = {}
            for topic, payload in messages:
                by_topic.setdefault(topic, []).append(payload["timestamp"])
            assert all(stamps == sorted(stamps) for stamps in by_topic.values())           # in order
            stamps = [p["timestamp"] for _t, p in messages]
            assert stamps == sorted(stamps)                     # one poll after the other, across topics
            # what the meters said during the outage (the clock moved only then) came after it, as history
            # (the last second's polls go on once the broker is back: those may be live)
            outage = [p for _t, p in messages if int(T0 * 1000) < p["timestamp"] < int((T0 + OUTAGE_STEPS) * 1000)]
            assert outage and all(p.get("history") is True for p in outage)
            assert len([p for _t, p in messages if p.get("history")]) >= waiting > 0
            assert all(p["timestamp"] == int(T0 * 1000) for _t, p in messages[:before])

            # logged curves as the store writes them, as history: consumption as the energy index at the interval's
            # end, the meters' load curves and histories downloaded from their caches at their intervals' end
            clock_before = clock.time()
            push = gw.door(Caller("push"))              # (the store's catalogue is the exports' query)

            async def written_since():
                return [info for info in await push.series_catalogue()
                        if info["newest"] + info["period_s"] > clock_before]
            for _ in range(6):                          # period boundaries until the store wrote points
                clock.advance((int(clock.time()) // 600 + 1) * 600 - clock.time())
                await polled(gw)
                await gw.curves.cycle()                 # a first consumption reading is a baseline only
                if len(await written_since()) > 1:
                    break
            await settle(service)
            await wait_for(lambda: len(live(subscriber)) >= service.collector.samples)
            history = [(t, p["value"]) for t, p in live(subscriber) if p.get("history")]
            catalogue = await push.series_catalogue()                           # what the store holds
            addresses = dict((d.uid, d.address) for d in gw.topology.devices)
            indexes = 0
            for info in catalogue:
                if info["kind"] == "consumption":
                    index = await gw.storage.last_index(info["name"])
                    topic = device_topic(gw, addresses[info["device"]], info["load"], info["key"])
                    assert (topic, index) in history, (info["name"], index)
                    indexes += 1
            curve = dict(((t, p["timestamp"]), p) for t, p in live(subscriber) if p.get("history"))
            for info in catalogue:          # (the points of the download at the start came before the settings)
                if info["kind"] in ("load_curve", "history") and info["newest"] + info["period_s"] > clock_before:
                    name = info["name"]
                    data = (await gw.storage.query([name], info["newest"], info["newest"] + 1))[name]
                    topic = device_topic(gw, addresses[info["device"]], info["load"], info["key"])
                    point = curve[(topic, int((info["newest"] + info["period_s"]) * 1000))]
                    stored = data.values[0]
                    assert abs(point["value"] - stored) <= abs(stored) * 1e-6, name
                    indexes += 1
            assert indexes > 0                          # the store wrote curve points, and each arrived

            # the policy's cloud switch off: the connection closes at once, nothing more is published
            await gw.door(Caller("web", "cyber")).set_settings({"policy.cloud": False})
            await wait_for(lambda: not service.running)
            await wait_for(lambda: any(t == "plant/GW1/status" and p["online"] is False
                                       for t, p, _r in subscriber.json("plant/GW1/status")))
            count = len(subscriber.snapshot())
            clock.advance(1)
            await polled(gw)
            await asyncio.sleep(0.5)
            assert len(subscriber.snapshot()) == count and service.status()["connected"] is False
            assert gw.door(Caller("mqtt")).alarm_active() is None

            # malformed settings: refused, field by field, nothing changed
            cyber = gw.door(Caller("web", "cyber"))
            for change, field in (({"mqtt.topic_template": "{site}/{nope}/{measurement}"}, "mqtt.topic_template"),
                                  ({"mqtt.topic_template": "a/{device}/{measurement}"}, "mqtt.topic_template"),
                                  ({"mqtt.topic_template": "a/#/{device}/{load}/{measurement}"},
                                   "mqtt.topic_template"),
                                  ({"mqtt.qos": 2}, "mqtt.qos"), ({"mqtt.mode": "xml"}, "mqtt.mode"),
                                  ({"mqtt.group_id": "a/b"}, "mqtt.group_id"),
                                  ({"mqtt.client_cert": "-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----",
                                    "mqtt.client_key": ""}, "mqtt.client_cert"),
                                  ({"mqtt.host": ""}, "mqtt.host"),
                                  ({"mqtt.port": 0}, "mqtt.port")):
                before_values = dict((name, gw.settings.get(name)) for name in change)
                with pytest.raises(Refused) as refused:
                    await cyber.set_settings(change)
                assert refused.value.reason == "bad_value"
                assert field in [d["field"] for d in refused.value.details], (change, refused.value.details)
                assert dict((name, gw.settings.get(name)) for name in change) == before_values
    try:
        asyncio.run(scenario())
    finally:
        subscriber.close()
        broker.close()


def test_tls_client_certificate_and_credentials(tmp_path):
    pki = Pki("MQTT Test Root CA")
    ca = tmp_path / "ca.pem"
    ca.write_text(pki.pem)
    server = pki.issue(tmp_path, ("127.0.0.1",), label="broker")
    client = open(pki.issue(tmp_path, ("127.0.0.1",), label="client")).read()
    cert, key = client.split("-----BEGIN PRIVATE KEY-----")
    key = "-----BEGIN PRIVATE KEY-----" + key
    broker = Mosquitto(tmp_path / "broker", users={"gw": "right"}, tls=(str(ca), server),
                       require_certificate=True).start()
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(tmp_path / "client.pem"))
    subscriber = Subscriber(broker.port, tls_context=context, user="gw", password="right", persistent=False)
    clock = ManualClock(T0)

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(METERS[1:], ()), OVERRIDES, clock,
                                   services=[FastRetry]) as gw:
            service = gw.services[-1]
            mqtt, cyber = gw.door(Caller("mqtt")), gw.door(Caller("web", "cyber"))
            await cyber.add_ca_certificates(pki.pem)

            async def alarm_becomes(key):
                failures = service.failures
                await wait_for(lambda: (mqtt.alarm_active() or {}).get("text", {}).get("key") == key
                               and service.failures >= failures + 2, guard=30)         # and retried

            # TLS, no client certificate: the broker ends the handshake
            await start(gw, broker.port, **{"mqtt.tls": True, "mqtt.user": "gw", "mqtt.password": "right"})
            await alarm_becomes("mqtt.error.tls")
            # the certificate (pasted without its line breaks) and a wrong password: refused credentials, retried
            await cyber.set_settings({"mqtt.client_cert": cert.replace("\n", ""),
                                      "mqtt.client_key": key.replace("\n", " "), "mqtt.password": "wrong"})
            await alarm_becomes("mqtt.error.auth")
            assert service.running and "refused the credentials" in mqtt.alarm_active()["detail"]
            # a name the broker's certificate does not carry
            await cyber.set_settings({"mqtt.password": "right", "mqtt.host": "localhost"})
            await alarm_becomes("mqtt.error.tls")
            # all right: connected over TLS, the values arrive, the alarm is cleared
            await cyber.set_settings({"mqtt.host": "127.0.0.1"})
            await polled(gw)
            await settle(service)
            await wait_for(lambda: len(live(subscriber)) >= service.collector.samples > 0)
            assert mqtt.alarm_active() is None and service.status()["connected"] is True
            # a key that is not the certificate's is refused before anything changes
            other = open(pki.issue(tmp_path, ("127.0.0.1",), label="other")).read()
            other_key = "-----BEGIN PRIVATE KEY-----" + other.split("-----BEGIN PRIVATE KEY-----")[1]
            with pytest.raises(Refused) as refused:
                await cyber.set_settings({"mqtt.client_key": other_key.replace("\n", "")})
            assert [d["key"] for d in refused.value.details] == ["mqtt.problem.key_mismatch"]
    try:
        asyncio.run(scenario())
    finally:
        subscriber.close()
        broker.close()
