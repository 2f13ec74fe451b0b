"""The MQTT publisher (issue 18): the gateway's values to an existing broker, JSON or Sparkplug B, store and forward.

Runs while ``mqtt.enabled`` and the policy's cloud switch (``policy.cloud``) are both on (daemon/service.py:
switching either off closes the connection at once; a connection setting changed reconnects). While it runs,
every sample (samples.py) goes into the spool (spool.py) and leaves it only once the broker acknowledged it
(session.py), so an outage, a restart or a power cut loses nothing while the spool has room.

A failed connection, a refused login, a TLS failure or a dropped connection raises alarm 6 under the source
"mqtt" with the reason (errors.py, EN/FR catalogue texts) and is retried after a back-off that doubles from
``min_backoff`` to ``max_backoff``; the next session that gets its births acknowledged clears it. Switched off,
the alarm is cleared. The mode's own state (Sparkplug's bdSeq) is persisted before each connection.
"""

import asyncio
import logging
import os

import aiomqtt

from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from daemon.service import SwitchedService
from daemon.supervise import Supervised
from outbound.mqtt import client as mqtt_client, config, errors
from outbound.mqtt.modes import MODES
from outbound.mqtt.samples import Collector
from outbound.mqtt.session import Reconnect, Session
from outbound.mqtt.spool import MB, SampleSpool

log = logging.getLogger("gateway.mqtt")

SPOOL_DIR = "mqtt-spool"
MIN_BACKOFF_S = 2.0
MAX_BACKOFF_S = 120.0
TICK_S = 1.0                 # devices' links looked at, the period checked
CONNECT_TIMEOUT_S = 15.0
# QoS 1 messages on the wire unacknowledged (paho's default is 20): a batch leaves in one write and its PUBACKs
# come back in one read. 100 is what AWS IoT Core accepts per client ("maximum inbound unacknowledged
# messages"); Mosquitto does not limit a 3.1.1 client's; beyond, paho queues them in order.
INFLIGHT = 100


class MqttService(SwitchedService):
    name = "mqtt"
    reopen_keys = config.RECONNECT + ("mqtt.spool_mb",)
    min_backoff = MIN_BACKOFF_S
    max_backoff = MAX_BACKOFF_S

    def __init__(self, door):
        SwitchedService.__init__(self, door)
        self.spool = None
        self.mode = None
        self.session = None
        self.collector = Collector(door, self.settings, self._sink)
        self.failures = 0
        self.last_error = None          # the SessionError of the last failure (None after a success)
        self.next_retry = None          # gateway time of the next attempt while backing off
        self.connected_since = None
        self.sessions = 0
        self.published = 0              # samples acknowledged since start
        self._published_before = 0
        self._retry = asyncio.Event()
        self._task = None
        self._ticker = None
        self._mode_state = None
        self._client_log = errors.LastError()             # paho's own error messages (the reason of a drop)
        self._client_logger = logging.getLogger("gateway.mqtt.client.%x" % id(self))
        self._client_logger.addHandler(self._client_log)

    # ---------------------------------------------------------------- lifecycle

    async def start(self):
        self.door.check_settings_with(config.check)
        self.door.on_values(self.collector.on_values)
        self.door.on_curve_points(self.collector.on_curve_points)
        await SwitchedService.start(self)

    async def _open(self):
        get = self.settings.get
        self.spool = SampleSpool(self.door.state_path(SPOOL_DIR), get("mqtt.spool_mb") * MB, on_drop=self._dropped)
        await self.spool.open()
        self.mode = MODES[get("mqtt.mode")](self.door, get)
        self._mode_state = self.door.state_path("mqtt-%s.json" % get("mqtt.mode"))
        saved = await run_blocking(_read_state, self._mode_state)
        if saved:
            self.mode.restore(saved)
        self.failures, self.last_error, self.next_retry = 0, None, None
        self.collector.start()
        self._task = Supervised("mqtt", self._run)
        self._task.start()
        self._ticker = Supervised("mqtt-tick", self._tick)
        self._ticker.start()

    async def _close(self):
        self.collector.stop()
        await self._ticker.stop()
        await self._task.stop()
        self.session, self.connected_since, self.next_retry = None, None, None
        await self.spool.close()
        await self._save_mode_state()
        if self.door.alarm_active() is not None:
            self.door.report_alarm(False)

    # ---------------------------------------------------------------- the connection

    async def _run(self):
        while True:
            error = await self._session()
            if error is None:
                continue                    # a reconnection the mode asked for: at once, not a failure
            self.failures += 1
            self.last_error = error
            backoff = min(self.max_backoff, self.min_backoff * 2 ** min(self.failures - 1, 30))
            self.next_retry = self.door.time() + backoff
            log.warning("mqtt: %s (next try in %.0f s)", error, backoff)
            self.door.report_alarm(True, str(error), text=error.text())
            self._retry.clear()
            try:
                await asyncio.wait_for(self._retry.wait(), backoff)
            except TimeoutError:
                pass
            self.next_retry = None

    async def _session(self):
        """One connection, until it fails: its SessionError (None: the mode asked for a new connection)."""
        conn = config.connection(self.settings.get, self.door.identity()["netid"])
        connected = False
        try:
            await self._save_mode_state()               # the next bdSeq is on disk before it is on the wire
            context = None
            if conn.tls:
                context = await run_blocking(config.client_context, self.door.tls_client_context, conn,
                                             os.path.dirname(self._mode_state))
            will = self.mode.will()
            self._client_log.text = None
            client = mqtt_client.Client(
                conn.host, conn.port, username=conn.user, password=conn.password, identifier=conn.client_id,
                will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain) if will else None,
                tls_context=context, keepalive=conn.keep_alive, timeout=CONNECT_TIMEOUT_S, clean_session=True,
                logger=self._client_logger, max_inflight_messages=INFLIGHT)
            async with client:
                connected = True
                self.session = Session(client, self.mode, self.spool, self._now_ms)
                try:
                    await self._session_started()
                    await self.session.run()
                except asyncio.CancelledError:
                    await self.session.goodbye()      # switched off: say so before the DISCONNECT
                    raise
            raise aiomqtt.MqttError("the session ended")
        except asyncio.CancelledError:
            raise
        except Reconnect as exc:
            log.info("mqtt: %s", exc)
            return None
        except (aiomqtt.MqttError, OSError, ValueError) as exc:
            return errors.classify(exc, conn.host, conn.port, connected, self._client_log.text)
        finally:
            if self.session is not None:
                self._published_before += self.session.published
                self.session = None
            self.connected_since = None
            if connected:
                self.mode.session_ended()

    async def _session_started(self):
        """Connected (the broker accepted the connection and its login): the alarm is cleared."""
        self.sessions += 1
        self.connected_since = self.door.time()
        log.info("mqtt: connected to %s:%s", self.settings.get("mqtt.host"), self.settings.get("mqtt.port"))
        if self.failures or self.door.alarm_active() is not None:
            self.failures, self.last_error = 0, None
            if self.door.alarm_active() is not None:
                self.door.report_alarm(False)

    def retry_now(self):
        self._retry.set()

    async def _tick(self):
        """Devices lost and back (status messages at once), and the periodic publication."""
        loop = asyncio.get_running_loop()
        next_period = loop.time()
        while True:
            lost, back = self.collector.links()
            now = self._now_ms()
            if self.session is not None and (lost or back):
                messages = []
                for address in lost:
                    messages.extend(self.mode.device_lost(address, now))
                for address in back:
                    messages.extend(self.mode.device_back(address, now))
                self.session.publish_now(messages)
            if self.settings.get("mqtt.publish") == "period" and loop.time() >= next_period:
                self.collector.period(self.door.time())
                next_period = loop.time() + self.settings.get("mqtt.period_s")
            await asyncio.sleep(TICK_S)

    # ---------------------------------------------------------------- samples and the spool

    def _sink(self, sample):
        if self.spool is not None:
            self.spool.append(sample)

    def _dropped(self, count):
        self.door.record_event("mqtt-dropped", "MQTT spool full: %d unsent sample(s) dropped, the oldest" % count,
                               "non-critical", count=count)

    def _now_ms(self):
        return int(self.door.time() * 1000)

    async def _save_mode_state(self):
        if self.mode is None or self._mode_state is None:
            return
        state = self.mode.state()
        if state:
            await run_blocking(write_json, self._mode_state, state)

    # ---------------------------------------------------------------- for the page

    def status(self):
        """The page's rows (webconfig/outbound_pages.py STATUS_ROWS["mqtt"])."""
        session = self.session
        out = {"enabled": self.enabled(), "running": self.running,
               "connected": self.connected_since is not None,
               "broker": "%s:%s" % (self.settings.get("mqtt.host"), self.settings.get("mqtt.port")),
               "connected_since": self.connected_since, "sessions": self.sessions,
               "published": self._published_before + (session.published if session is not None else 0),
               "next_retry": self.next_retry, "failures": self.failures}
        if self.last_error is not None:
            out["last_error"] = {"code": self.last_error.code, "params": self.last_error.params,
                                 "message": str(self.last_error)}
        if self.spool is not None:
            out.update({"spool_samples": self.spool.pending() + self.spool.buffered(),
                        "spool_bytes": self.spool.used_bytes(), "spool_max_bytes": self.spool.max_bytes,
                        "dropped": self.spool.dropped})
        return out


def _read_state(path):
    try:
        data = read_json(path, default={})
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
