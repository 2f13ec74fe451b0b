"""Polling on the simulated board: values, faults, alarms, counters, fairness."""

import asyncio


from board.base import ManualClock
from conftest import (detect, other_alarms, other_raised, resolution, retire_default_passwords, running_gateway, status_of,
                      topology_with, wait_for)
from core import catalogue
from daemon.runtime.bus import BURSTS, CLASS_NAMES, CURVE, DISCOVERY, PASSTHROUGH, POLL, ClassQueues, _Transaction
from daemon.runtime.poller import plan_reads
from core import modbus_rtu as rtu

T0 = 1_700_000_000.0


def three_meters(crc_rate=0.0):
    return topology_with([
        {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 2, "crc_error_rate": crc_rate},
        {"reference": "U-30", "address": 11, "netid": "D5038A", "crc_error_rate": crc_rate},
        {"reference": "IO-10", "address": 15, "netid": "C0E45D", "crc_error_rate": crc_rate},
    ])


def cached_equals_meter(gw, meter, address):
    """Every cached value equals what the simulated meter holds (frozen clock)."""
    mismatches = []
    for load in gw.cache.loads(address):
        truth = meter.values(load)
        for key in gw.cache.keys(address, load):
            reading = gw.cache.get(address, load, key)
            if reading.value is None or abs(reading.value - truth[key]) > resolution(meter.reference, load, key):
                mismatches.append((load, key, reading.value, truth[key]))
    return mismatches


def test_cached_values_equal_the_meters_and_requests_follow_the_plan(tmp_path):
    clock = ManualClock(T0)
    async def scenario():
        async with running_gateway(tmp_path / "s", three_meters(), clock=clock) as gw:
            await detect(gw, "fast")
            meter = gw.board.find_meter(address=4)
            await wait_for(lambda: gw.pollers["digiware"].device_cycles[15] >= 3)
            for address in (4, 11, 15):
                assert cached_equals_meter(gw, gw.board.find_meter(address=address), address) == []
                assert all(gw.cache.get(address, load, key).quality == "good"
                           for load in gw.cache.loads(address) for key in gw.cache.keys(address, load))
            # The poller sends exactly the coalesced plan of the fast tier each cycle (the clock is frozen:
            # no slower tier falls due again, issue 19): count it.
            device = gw.topology.device(4)
            loads = [(n, device.network(n)) for n in device.load_numbers()]
            plan = plan_reads("I-35", loads, tier="inst")
            counted = gw.pollers["digiware"].engine.counters[4]

            def failed():       # each failed transaction is sent again: a retry the meter also counts
                return counted.timeouts + counted.crc_errors + counted.frame_errors
            before, cycles_before, failed_before = meter.requests, gw.pollers["digiware"].device_cycles[4], failed()
            await wait_for(lambda: gw.pollers["digiware"].device_cycles[4] >= cycles_before + 3)
            cycles = gw.pollers["digiware"].device_cycles[4] - cycles_before
            sent = meter.requests - before - (failed() - failed_before)
            # both snapshots may fall inside a cycle: within one cycle's worth
            assert len(plan) * (cycles - 1) < sent <= len(plan) * (cycles + 1)
            assert len(plan) == 2                                  # the instantaneous block × 2 loads
            assert len(plan_reads("I-35", loads)) == 8             # every tier: 4 blocks × 2 loads
            # a value the meter does not have is "not supported", not zero
            assert gw.cache.get(11, 0, "i1").quality == "not_supported"
    asyncio.run(scenario())


def test_silent_meter_raises_alarm_3_then_clears_and_others_keep_their_cycle(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", three_meters(), {"poll.backoff_max_s": 1}) as gw:
            await detect(gw, "fast")
            poller = gw.pollers["digiware"]
            await retire_default_passwords(gw)         # alarm 8 off: the LED then shows alarm 3 alone
            await wait_for(lambda: poller.device_cycles[4] >= 2)
            assert gw.board.leds["alarm"] == "off"
            gw.board.configure_meter(0xD5038A, silent=True)
            await wait_for(lambda: (3, "digiware:11") in gw.alarms.active)
            assert gw.cache.get(11, 0, "v1").quality == "comm_lost"
            assert status_of(gw)["devices"][1]["status"] == "comm_lost"
            timeouts = gw.engines["digiware"].counters[11].timeouts
            assert timeouts >= 2                                   # the request and its retry
            others = poller.device_cycles[4], poller.device_cycles[15]
            await wait_for(lambda: poller.device_cycles[4] >= others[0] + 10 and
                           poller.device_cycles[15] >= others[1] + 10)
            # back-off: the silent meter is asked far less often than the others are polled
            assert gw.engines["digiware"].counters[11].timeouts - timeouts < 10
            assert gw.board.leds["alarm"] == "blink"
            gw.board.configure_meter(0xD5038A, silent=False)
            await wait_for(lambda: (3, "digiware:11") not in gw.alarms.active)
            await wait_for(lambda: gw.cache.get(11, 0, "v1").quality == "good")
            assert gw.board.leds["alarm"] == "off"
            events = [(e["alarm"], e["event"], e["source"]) for e in gw.alarms.events() if "alarm" in e]
            assert events.count((3, "raised", "digiware:11")) == 1
            assert events.count((3, "cleared", "digiware:11")) == 1
            counters = gw.engines["digiware"].counters[11].as_dict()
            assert counters["last_success"] is not None and counters["answers"] > 0
    asyncio.run(scenario())


def test_crc_noise_of_5_percent_keeps_values_right_and_counts_errors(tmp_path):
    clock = ManualClock(T0)
    async def scenario():
        async with running_gateway(tmp_path / "s", three_meters(crc_rate=0.05), clock=clock) as gw:
            await detect(gw, "fast")
            poller = gw.pollers["digiware"]
            await wait_for(lambda: poller.device_cycles[4] >= 25, guard=90)
            counters = gw.engines["digiware"].counters
            corrupted = sum(counters[a].crc_errors + counters[a].frame_errors for a in (4, 11, 15))
            assert corrupted >= 1
            # every corrupted answer the bus produced was caught (none slipped into
            # values); one may still be on its way when we look
            assert 0 <= gw.board.buses["digiware"].stats["corrupted"] - corrupted <= 1
            for address in (4, 11, 15):
                assert cached_equals_meter(gw, gw.board.find_meter(address=address), address) == []
            # retries absorb the noise: no alarm now, and none raised and cleared meanwhile (count the events)
            raised = other_raised(gw)
            assert raised == [] and not other_alarms(gw), raised
    asyncio.run(scenario())


async def served_order(gw, batches):
    """Queue every (class, tag, count) batch at once on an idle bus; tags in service order."""
    engine = gw.engines["digiware"]
    order = []
    futures = []
    for klass, tag, count in batches:
        for _ in range(count):
            future = engine.submit(15, rtu.read_request(3, catalogue.IO_BASE, 4), klass)
            future.add_done_callback(lambda _f, tag=tag: order.append(tag))
            futures.append(future)
    await asyncio.gather(*futures)
    return order


IDLE_IO10 = topology_with([{"reference": "IO-10", "address": 15, "netid": "C0E45D"}], baud=115200)


def test_priorities_serve_passthrough_first_without_starving_polling(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", IDLE_IO10) as gw:
            order = await served_order(gw, [(DISCOVERY, "d", 3), (POLL, "p", 3), (PASSTHROUGH, "x", 12)])
            assert order[0] == "x"
            # fairness: never more than FAIRNESS_BURST pass-through in a row while polling waits
            first_poll = order.index("p")
            assert first_poll <= 4
            runs, current = [], 0
            for tag in order[:order.index("p", first_poll + 1)]:
                current = current + 1 if tag == "x" else 0
                runs.append(current)
            assert max(runs) <= 4
            assert set(order) == {"x", "p", "d"} and len(order) == 18
    asyncio.run(scenario())


def test_queue_bound_refuses_instead_of_growing(tmp_path):
    topo = topology_with([{"reference": "IO-10", "address": 15, "netid": "C0E45D", "silent": True}])
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            engine = gw.engines["digiware"]
            from daemon.runtime.bus import MAX_QUEUED, BusBusy
            futures = [engine.submit(15, rtu.read_request(3, 0, 1), DISCOVERY) for _ in range(MAX_QUEUED + 5)]
            refused = [f for f in futures if f.done() and isinstance(f.exception(), BusBusy)]
            assert len(refused) >= 5
            for f in futures:
                f.cancel()
    asyncio.run(scenario())


def test_curve_downloads_get_only_a_small_share_while_polling_waits(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", IDLE_IO10) as gw:
            from daemon.runtime.bus import BURSTS, CURVE
            order = await served_order(gw, [(CURVE, "c", 3), (POLL, "p", 70)])
            first = order.index("c")
            second = order.index("c", first + 1)
            assert second - first - 1 == BURSTS[CURVE] == 32      # 32 poll reads between two curve reads
            assert order.count("c") == 3                          # and curves still progress
    asyncio.run(scenario())


def check_fair_shares(order):
    """The fairness rule on a service order where every class always waited: (a) a class is passed by at
    most BURSTS[k] + k - 1 transactions of higher classes between two of its own, (b) over the window each
    class gets at least a count of K // (2 * (BURSTS[k] + k)), (c) curve downloads no more than their small
    share, and pass-through still most of the bus."""
    window = len(order)
    for klass in (POLL, CURVE, DISCOVERY):
        passed, worst = 0, 0
        for served in order:
            if served == klass:
                worst, passed = max(worst, passed), 0
            elif served < klass:
                passed += 1
        worst = max(worst, passed)
        assert worst <= BURSTS[klass] + klass - 1, (CLASS_NAMES[klass], worst)
        assert order.count(klass) >= window // (2 * (BURSTS[klass] + klass)), (CLASS_NAMES[klass], order.count(klass))
    assert order.count(CURVE) <= window // BURSTS[CURVE] + 1
    assert order.count(PASSTHROUGH) >= window // 2


def test_every_class_gets_its_share_when_all_four_wait():
    """The engine's pick order with all four classes loaded all the time (the old rule promoted only the next
    class down: under pass-through and poll, curve downloads and discovery never went)."""
    async def scenario():
        loop = asyncio.get_running_loop()
        queues = ClassQueues()

        def add(klass):
            queues.push(_Transaction(15, b"\x03", loop.create_future(), 0, 0.1, klass))
        for klass in range(len(CLASS_NAMES)):
            add(klass)
        order = []
        for _ in range(400):
            tx = queues.pick()
            order.append(tx.klass)
            add(tx.klass)                  # its class is at once loaded again
        check_fair_shares(order)
        # a request whose caller gave up is dropped, not counted as a turn
        queues = ClassQueues()
        add(POLL)
        add(DISCOVERY)
        gone = _Transaction(15, b"\x03", loop.create_future(), 0, 0.1, POLL)
        queues.push(gone)
        gone.future.cancel()
        assert [queues.pick().klass, queues.pick().klass, queues.pick()] == [POLL, DISCOVERY, None]
    asyncio.run(scenario())


def test_every_class_gets_its_share_on_a_real_bus(tmp_path):
    """The same on the simulated RS485 line: each class keeps two requests queued (one refilled as each is
    answered), and the order the IO-10 answers them in keeps every share."""
    async def scenario():
        async with running_gateway(tmp_path / "s", IDLE_IO10) as gw:
            engine = gw.engines["digiware"]
            order, futures, window = [], [], 240

            def submit(klass):
                future = engine.submit(15, rtu.read_request(3, catalogue.IO_BASE, 4), klass)
                future.add_done_callback(lambda f: served(klass, f))
                futures.append(future)

            def served(klass, future):        # answered or not (a slow machine may time one out), it had its turn
                if future.cancelled() or len(order) >= window:
                    return
                order.append(klass)
                submit(klass)
            for klass in range(len(CLASS_NAMES)):
                submit(klass)
                submit(klass)
            await wait_for(lambda: len(order) >= window, guard=60)
            for future in futures:
                future.cancel()
            check_fair_shares(order)
            assert engine.counters[15].answers >= window // 2          # the IO-10 did answer on the line
    asyncio.run(scenario())
