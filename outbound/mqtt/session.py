"""One broker session: subscriptions, births, then the spool in order until the connection drops.

Births go first and are acknowledged before any sample. Samples are read from the spool at its cursor, turned
into messages by the mode, and published in order (the client hands a batch to paho at once, in call order;
paho keeps at most ``max_inflight`` QoS 1 messages on the wire and sends the rest in order as acknowledgements
come). A batch's samples leave the spool (``ack``) once every message of the batch is acknowledged (QoS 1:
its PUBACK; QoS 0: written to the socket), batches in order, so the cursor never passes a sample the broker
does not have. What the spool held when the session began is the outage's backlog: its live samples go as
history (not retained: the retained value stays the newest one).
"""

import asyncio
import collections
import logging

log = logging.getLogger("gateway.mqtt")

BATCH = 100                 # samples read and encoded at once
WINDOW = 8                  # batches awaiting their acknowledgements
GOODBYE_S = 1.0             # a deliberate close: how long the death message may take


def _before(position, end):
    return (position.seq, position.offset) <= (end.seq, end.offset)


class Reconnect(Exception):
    """The mode asked for a new connection (``Mode.reconnect_wanted``): the service connects again at once, and
    it is not a failure (no alarm, no back-off)."""


class Session:
    def __init__(self, client, mode, spool, now_ms):
        self.client = client
        self.mode = mode
        self.spool = spool
        self.now_ms = now_ms                  # () -> the gateway clock's Unix ms
        self.published = 0                    # samples acknowledged in this session
        self.messages = 0                     # messages acknowledged in this session
        self.backlog = 0                      # samples of the backlog sent as history
        self._side = []                       # futures of messages outside the spool (status, rebirth)

    def publish(self, messages):
        """Hand ``messages`` to the client now (in call order); a future done when all are acknowledged."""
        return self.client.publish_batch(messages)

    def publish_now(self, messages):
        """Messages that do not wait for the spool (a device lost or back, a rebirth): sent at once. A failure
        is the connection's: the session ends with it."""
        self._side = [future for future in self._side if not future.done()]
        if messages:
            future = self.publish(messages)
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._side.append(future)

    async def run(self):
        """Until the connection drops (aiomqtt.MqttError) or the task is cancelled."""
        for topic, qos in self.mode.subscriptions():
            await self.client.subscribe(topic, qos)
        backlog_end = self.spool.end()
        loop = asyncio.get_running_loop()
        receiver = loop.create_task(self._receive(), name="mqtt-receive")
        sender = loop.create_task(self._start(backlog_end), name="mqtt-send")
        try:
            done, _pending = await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()                 # the drop's exception
        finally:
            for task in [receiver, sender] + self._side:
                task.cancel()
            await asyncio.gather(receiver, sender, *self._side, return_exceptions=True)

    async def _start(self, backlog_end):
        """Births once the mode may publish (Sparkplug: the primary host is online), then the spool."""
        while not self.mode.may_publish():
            self.spool.flushed.clear()
            await self.spool.flushed.wait()   # the receiver sets it after each message it handled
        births = self.mode.births(self.now_ms())
        if births:
            await self.publish(births)
            self.messages += len(births)
        await self._send(backlog_end)

    async def goodbye(self):
        """A deliberate close: the mode's death message (what the will would have said), briefly awaited."""
        will = self.mode.will()
        if will is None:
            return
        try:
            await asyncio.wait_for(self.client.publish(will.topic, will.payload, qos=will.qos, retain=will.retain,
                                                       timeout=GOODBYE_S), GOODBYE_S)
        except Exception as exc:              # closing anyway: the broker publishes the will
            log.info("mqtt: the death message was not sent: %s", exc)

    async def _receive(self):
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else bytes(message.payload or b"")
            answer = self.mode.incoming(str(message.topic), payload, self.now_ms())
            if answer:
                self.publish_now(answer)
            if self.mode.reconnect_wanted():
                await asyncio.gather(*self._side, return_exceptions=True)    # its last words leave first
                raise Reconnect("the %s mode asked for a new connection" % type(self.mode).__name__)
            self.spool.flushed.set()          # may_publish may have changed: the sender looks again

    async def _send(self, backlog_end):
        position = self.spool.cursor
        inflight = collections.deque()        # (position after the batch, its future, messages, samples in it)
        while True:
            while inflight and inflight[0][1].done():
                await self._acknowledged(inflight.popleft())
            if len(inflight) >= WINDOW:
                await self._acknowledged(inflight.popleft())
                continue
            if not self.mode.may_publish():
                if inflight:
                    await self._acknowledged(inflight.popleft())
                    continue
                self.spool.flushed.clear()
                await self.spool.flushed.wait()
                continue
            self.spool.flushed.clear()
            records = await self.spool.read(position, BATCH)
            if not records:
                if inflight:
                    await self._acknowledged(inflight.popleft())
                else:
                    await self.spool.flushed.wait()
                continue
            if not self.mode.may_publish():   # the primary host went offline during the read: read them again later
                continue
            if not _before(records[0][1], backlog_end):   # positions grow: none of the backlog (the usual case)
                samples = [sample for sample, _end in records]
            else:
                samples = []
                for sample, end in records:
                    if not sample.history and _before(end, backlog_end):
                        sample = sample._replace(history=True)
                        self.backlog += 1
                    samples.append(sample)
            position = records[-1][1]
            messages = self.mode.encode(samples, self.now_ms())
            inflight.append((position, self.publish(messages), len(messages), len(samples)))

    async def _acknowledged(self, batch):
        position, acknowledged, messages, count = batch
        await acknowledged
        self.spool.ack(position)
        self.published += count
        self.messages += messages
