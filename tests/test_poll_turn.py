"""One poll turn of a bus (daemon/runtime/poller.py ``_poll_in_turn``), against a bus whose answers the test gives.

The next device's reads are queued before the current device's answers are collected, so the poll queue never
runs dry between two devices (lower classes get their fair share, not every gap); one task does the whole turn
(a task per device cost two more loop turns per device). A device that stops answering loses its other reads,
and a turn stopped mid-way leaves nothing queued.
"""

import asyncio
import types

from core import poll_tiers
from daemon.runtime.bus import POLL, BusTimeout
from daemon.runtime.poller import BusPoller


class HandBus:
    """Records what is submitted; the test answers each request's future."""

    def __init__(self):
        self.submitted = []          # (address, future) in order

    def submit(self, address, request, priority, retries=None, cuts=None):
        assert priority == POLL
        future = asyncio.get_running_loop().create_future()
        self.submitted.append((address, future))
        return future

    def addresses(self):
        return [address for address, _future in self.submitted]


def device_state(address, reads=2):
    read = types.SimpleNamespace(request=b"\x03\x00\x00\x00\x02", cuts=(0,), count=2, start=0)
    return types.SimpleNamespace(device=types.SimpleNamespace(address=address, reference="X", netid="N"),
                                 lost=False, failures=0, next_try=0.0,
                                 due_reads=lambda now, integration: [(poll_tiers.FAST, read)] * reads,
                                 schedule=types.SimpleNamespace(read=lambda tier, now: None))


def hand_poller(bus):
    poller = BusPoller("line", bus, None, None, None, None, types.SimpleNamespace(time=lambda: 0.0))
    poller.stored, poller.answered, poller.failed = [], [], []
    poller.integration_s = lambda: 900
    poller._store = lambda address, read, pdu, tier: poller.stored.append((address, pdu))
    poller._answered = lambda state: poller.answered.append(state.device.address)
    poller._failed = lambda state, exc: poller.failed.append(state.device.address)
    return poller


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_next_device_is_queued_before_the_current_is_collected_and_a_silent_one_loses_its_reads():
    async def scenario():
        bus = HandBus()
        poller = hand_poller(bus)
        tasks_before = len(asyncio.all_tasks())
        turn = asyncio.get_running_loop().create_task(poller._poll_in_turn([device_state(1), device_state(2),
                                                                            device_state(3)]))
        await settle()
        seen = [bus.addresses()]                    # device 1's reads and device 2's, not device 3's
        tasks = len(asyncio.all_tasks()) - tasks_before
        for _address, future in bus.submitted[:2]:
            future.set_result(b"one")
        await settle()
        seen.append(bus.addresses())                # device 1 collected: device 3 queued behind device 2
        bus.submitted[2][1].set_exception(BusTimeout("silent"))
        await settle()
        dropped = bus.submitted[3][1].cancelled()   # device 2 is silent: its second read never goes out
        for _address, future in bus.submitted[4:]:
            future.set_result(b"three")
        await turn
        return seen, tasks, dropped, poller.stored, poller.answered, poller.failed
    seen, tasks, dropped, stored, answered, failed = asyncio.run(scenario())
    assert seen == [[1, 1, 2, 2], [1, 1, 2, 2, 3, 3]]
    assert tasks == 1                               # the turn itself, no task per device
    assert dropped
    assert stored == [(1, b"one"), (1, b"one"), (3, b"three"), (3, b"three")]
    assert answered == [1, 3] and failed == [2]


def test_a_turn_stopped_mid_way_leaves_nothing_queued():
    async def scenario():
        bus = HandBus()
        poller = hand_poller(bus)
        turn = asyncio.get_running_loop().create_task(poller._poll_in_turn([device_state(1), device_state(2)]))
        await settle()
        turn.cancel()
        await asyncio.gather(turn, return_exceptions=True)
        return [future.cancelled() for _address, future in bus.submitted]
    assert asyncio.run(scenario()) == [True] * 4
