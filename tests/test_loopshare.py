"""Each client's budget of loop time (daemon/loopshare.py), on a clock the test moves: counts, not seconds.

The expected counts come from the token-bucket arithmetic (RFC 2697's single-rate bucket: a client spending
``cost`` per turn at most ``share`` of the time gets share * window / cost turns, plus its burst), not from
the module's own tables.
"""

import asyncio

from daemon.loopshare import LoopShare

COST = 0.0001                       # each turn takes 0.1 ms of loop
STEP = 0.00001                      # the clock moves 10 us between two attempts: a client asking far faster


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_flooding_client_gets_at_most_its_share_of_answers_per_window_while_another_is_served():
    clock = Clock()
    share = LoopShare(share=0.5, client_share=0.25, burst=0.001, clock=clock)
    window = 0.1
    served = {"flood": 0, "quiet": 0}
    asked = {"flood": 0, "quiet": 0}
    end = clock.now + window
    n = 0
    while clock.now < end:
        n += 1
        who = "quiet" if n % 100 == 0 else "flood"      # the quiet client asks once per ms
        asked[who] += 1
        if share.allows(who):
            served[who] += 1
            share.charge(who, COST)
        clock.now += STEP
    # the flood: at most a quarter of the window's loop time, plus one burst, plus the one overdrawing turn
    assert served["flood"] <= int(0.25 * window / COST) + int(0.001 / COST) + 1
    assert served["flood"] >= int(0.25 * window / COST) - 1           # and it did get its share
    assert served["quiet"] == asked["quiet"] > 0                      # the quiet one: every time
    assert share.limited > 0


def test_several_flooding_clients_share_the_services_budget_equally():
    clock = Clock()
    share = LoopShare(share=0.5, client_share=0.25, burst=0.001, clock=clock)
    served = dict.fromkeys("abcd", 0)
    for _ in range(20000):                          # four clients, each asking as fast as it can, in turn
        for who in "abcd":
            if share.allows(who):
                served[who] += 1
                share.charge(who, COST)
        clock.now += STEP
    total = sum(served.values())
    # all together at most half the loop (0.2 s of time: 2 x 0.1 s of turns; plus each one's burst and the
    # service's few), and nobody gets much more than another
    assert total <= int(0.5 * 0.2 / COST) + 4 * (int(0.001 / COST) + 1) + int(0.004 / COST)
    assert max(served.values()) <= 1.2 * min(served.values()), served



def test_a_quiet_client_is_not_held_by_the_debt_another_clients_long_turn_left_in_the_services_credit():
    clock = Clock()
    share = LoopShare(share=0.5, client_share=0.4, burst=0.001, clock=clock)
    assert share.allows("flood")
    share.charge("flood", 0.013)              # one 13 ms turn: the service's 4 ms of credit overdrawn by 9 ms
    assert not share.allows("flood")           # the flood waits for its own credit (and the service's)
    # a client that spent nothing lately (its own credit full) goes ahead, on the quiet clients' reserve
    assert share.allows("quiet")
    share.charge("quiet", 0.0004)
    assert share.quiet_turns == 1
    # its turn is still charged to the service: the debt the busy clients wait for grew by it
    assert share.total.credit < 0.004 - 0.013 - 0.0004 + 1e-9
    # a client with some of its credit spent is busy: the service's debt holds it like the flood
    assert share.allows("busy")
    share.charge("busy", 0.0005)
    clock.now += 0.0001
    assert not share.allows("busy")


def test_many_quiet_clients_together_take_no_more_than_the_reserve_while_the_services_credit_is_spent():
    clock = Clock()
    share = LoopShare(share=0.5, client_share=0.4, burst=0.001, clock=clock)
    window, served_quiet, flood, n = 0.2, 0, 0.0, 0
    end = clock.now + window
    while clock.now < end:
        if share.allows("flood"):              # keeps the service's credit spent with long turns
            share.charge("flood", 0.01)
            flood += 0.01
        n += 1
        who = "quiet-%d" % n                   # every attempt a new client: its own credit full
        if share.allows(who):
            served_quiet += 1
            share.charge(who, COST)
        clock.now += STEP
    # all together: the service's half of the loop and its 4 ms of credit, the reserve's tenth and its 4 ms, plus
    # the one turn each may overdraw them by (a flood's 10 ms and a newcomer's); never a newcomer's turn per
    # attempt (2,000 attempts of 0.1 ms would be the whole window)
    assert flood + served_quiet * COST <= (0.5 + 0.1) * window + 0.004 + 0.004 + 0.01 + COST
    assert share.quiet_turns > 0 and served_quiet < n / 2

def test_waiting_turns_resume_in_turn_and_a_full_queue_makes_room_for_a_quieter_client():
    async def scenario():
        share = LoopShare(share=0.5, client_share=0.25, burst=0.001)
        ran = []
        share.charge("flood", 0.002)                # overdrawn: about 8 ms before it may be served again
        share.allows("flood")
        for n in range(4):
            assert share.defer("flood", lambda n=n: ran.append(("flood", n)), per_client=8, total=4)
        assert not share.defer("flood", lambda: ran.append("never"), per_client=4, total=8)      # its places
        share.charge("quiet", 0.002)
        share.allows("quiet")
        # the whole queue is full: the quiet client's turn takes the place of the flood's newest
        assert share.defer("quiet", lambda: ran.append(("quiet", 0)), per_client=8, total=4)
        assert share.evicted == 1 and share.queued == 4
        for _ in range(200):
            if share.queued == 0:
                break
            await asyncio.sleep(0.005)
        assert share.queued == 0
        # each client's turns in order, and the flood lost its newest only
        assert [t for t in ran if t[0] == "flood"] == [("flood", 0), ("flood", 1), ("flood", 2)]
        assert ("quiet", 0) in ran and "never" not in ran
    asyncio.run(scenario())


def test_on_the_monotonic_clock_a_waiting_turn_is_woken_by_the_loops_timerfd_never_early():
    """The loop's own timers round up to whole milliseconds; the share's wake-ups go through the loop's
    timerfd (daemon/runtime/finetimer.py): counted there, and a turn never runs before its client's credit."""
    import time

    from daemon.runtime import finetimer

    async def scenario():
        share = LoopShare(share=0.5, client_share=0.25, burst=0.001)        # time.monotonic
        fine = finetimer.scheduler(asyncio.get_running_loop())
        before = fine.fired
        ran = []
        for _n in range(5):
            share.allows("lockstep")
            share.charge("lockstep", 0.0012)        # overdrawn by at most 0.2 ms: it waits ~0.8 ms at a 0.25 share
            assert not share.allows("lockstep")
            done = asyncio.get_running_loop().create_future()
            ready = share.ready_at("lockstep")
            share.wait("lockstep", lambda done=done, ready=ready: done.set_result(time.monotonic() >= ready))
            ran.append(await done)
        return ran, fine.fired - before

    ran, fired = asyncio.run(scenario())
    assert ran == [True] * 5                         # never before the credit is back
    assert fired == 5                                # each wake-up came from the timerfd


def test_the_fine_scheduler_runs_calls_in_time_order_and_skips_cancelled_ones():
    import time

    from daemon.runtime import finetimer

    async def scenario():
        loop = asyncio.get_running_loop()
        fine = finetimer.scheduler(loop)
        assert fine is finetimer.scheduler(loop)      # one per loop
        now, order = time.monotonic(), []
        done = loop.create_future()
        fine.call_at(now + 0.003, lambda: order.append(3))
        fine.call_at(now + 0.001, lambda: order.append(1))
        fine.call_at(now + 0.002, lambda: order.append(2)).cancel()
        fine.call_at(now + 0.004, lambda: done.set_result(time.monotonic() >= now + 0.004))
        return order, await done

    order, on_time = asyncio.run(scenario())
    assert order == [1, 3] and on_time
