"""The tiered poll plan (issue 19): instantaneous values every cycle, the slower kinds at their own rates.

What went on the wire is counted by the simulated meters themselves (every read request they answer,
classified by the register blocks of shared/socomec-registers.md: a Digiware load's window at
0x4800 + (n-1) x 0x800 holds the instantaneous block at +0x000, averages at +0x080, I harmonics at
+0x500 and energies at +0x580 (§3.3); a DIRIS A-40 has its instantaneous values at 0xC550, energies
at 0xC650 and THD at 0xC950 (§2, §3.1)). Time is a ManualClock: the counts do not depend on the
machine's speed. Qualities are read as every protocol reads them (Cache.get, the row rule
load_summary, and the raw words Modbus TCP answers from).
"""

import asyncio
import contextlib

from board.base import ManualClock
from conftest import polled, running_gateway, topology_with, wait_for
from core import catalogue, datamodel, modbus_rtu as rtu, poll_tiers, registry
from daemon.runtime.poller import TierSchedule, plan_reads, plan_tiers
from daemon.state.cache import Cache
from daemon.state.topology import Device, devices_from_simulation

# 50 s before the top of an hour: the default integration period (60 min) ends at T0 + 50
T0 = 1_700_002_750.0
assert (T0 + 50) % 3600 == 0

I35, A40 = 4, 20
LOADS = (1, 2)
DIGIWARE = [{"reference": "I-35", "address": I35, "netid": "DC85E9", "loads": len(LOADS), "nominal_w": 45000}]
RS485 = [{"reference": "A-40", "address": A40, "netid": "A40001", "nominal_w": 60000}]


def load_base(load):
    return 0x4800 + (load - 1) * 0x800


# (block name, first register, words) the meters' documented blocks, and the tier that reads them
I35_BLOCKS = [(tier, load_base(n) + offset, words) for n in LOADS
              for tier, offset, words in (("inst", 0x000, 92), ("avg", 0x080, 93), ("thd", 0x500, 109),
                                          ("energy", 0x580, 66))]
A40_BLOCKS = [("inst", 0xC550, 74), ("energy", 0xC650, 62), ("thd", 0xC950, 9)]


class Witness:
    """Counts the reads a simulated meter answers, by the tier of the block they fall in; can make the
    meter refuse one tier's block (exception 02, as a meter's firmware refuses an address)."""

    def __init__(self, meter, blocks):
        self.blocks = blocks
        self.reads = []
        self.refuse = set()
        handle = meter.handle_pdu

        def counted(pdu):
            if pdu and pdu[0] == rtu.READ_HOLDING:
                _f, start, count, _w = rtu.request_fields(pdu)
                tier = next((t for t, first, words in blocks if first <= start and start + count <= first + words),
                            None)
                if tier is not None:
                    self.reads.append(tier)
                    if tier in self.refuse:
                        return rtu.exception_pdu(pdu[0], rtu.ILLEGAL_DATA_ADDRESS)
            return handle(pdu)
        meter.handle_pdu = counted

    def since(self, mark):
        out = dict.fromkeys(poll_tiers.NAMES, 0)
        for tier in self.reads[mark:]:
            out[tier] += 1
        return out


def keys_of(gw, address, tier):
    return [(load, key) for load in gw.cache.loads(address) for key in gw.cache.keys(address, load)
            if poll_tiers.tier_of(key) == tier]


def qualities(gw, address, tier):
    return set(gw.cache.get(address, load, key).quality for load, key in keys_of(gw, address, tier))


@contextlib.asynccontextmanager
async def tiered_site(tmp_path, settings):
    """The I-35 and the A-40 on a gateway on a ManualClock at T0, each meter's reads counted by tier:
    (gateway, clock, I-35 witness, A-40 witness), once each device was polled twice."""
    clock = ManualClock(T0)
    topology = topology_with(DIGIWARE, RS485, baud=115200)
    async with running_gateway(tmp_path, topology, dict({"poll.min_cycle_ms": 0}, **settings), clock) as gw:
        i35 = Witness(gw.board.find_meter(address=I35), I35_BLOCKS)
        a40 = Witness(gw.board.find_meter(address=A40), A40_BLOCKS)
        await gw.topology.replace(devices_from_simulation(topology))
        await wait_for(lambda: gw.pollers["digiware"].device_cycles[I35] >= 2
                       and gw.pollers["rs485"].device_cycles[A40] >= 2)
        yield gw, clock, i35, a40


async def advance(gw, clock, seconds):
    """The gateway's clock ``seconds`` on, then a whole poll cycle of every bus."""
    clock.advance(seconds)
    await polled(gw)


def test_each_tier_is_read_at_its_rate_and_its_values_keep_the_freshness_rule(tmp_path):
    async def scenario():
        async with tiered_site(tmp_path, {}) as (gw, clock, i35, a40):
            poller = gw.pollers["digiware"]
            # the first cycles read every tier (once each, or again where a loaded machine made a read fail and
            # its tier stayed due)
            assert min(i35.since(0)[tier] for tier in ("avg", "thd", "energy")) >= len(LOADS), i35.since(0)
            assert a40.since(0)["thd"] >= 1 and a40.since(0)["energy"] >= 1

            # the clock stands still: N cycles read the instantaneous block of each load, nothing else
            mark, cycles = len(i35.reads), poller.device_cycles[I35]
            await wait_for(lambda: poller.device_cycles[I35] >= cycles + 6)
            n = poller.device_cycles[I35] - cycles
            got = i35.since(mark)
            assert len(LOADS) * (n - 1) < got["inst"] <= len(LOADS) * (n + 1)
            assert got["avg"] == got["thd"] == got["energy"] == 0
            assert poller.tier_requests["avg"] >= len(LOADS) and poller.tier_requests["thd"] >= len(LOADS)

            # 20 s on: the slow tiers are not due (averages and THD every 30 s, energies every 60 s); their
            # values, 20 s old, stay good by their own tier's rule while the fast tier's are fresh
            mark_i, mark_a = len(i35.reads), len(a40.reads)
            await advance(gw, clock, 20)
            got = i35.since(mark_i)
            # (at least a cycle's worth of instantaneous reads: on a loaded machine one read of a cycle may fail)
            assert got["inst"] >= len(LOADS) and got["avg"] == got["thd"] == got["energy"] == 0
            for tier in ("inst", "avg", "thd", "energy"):
                assert qualities(gw, I35, tier) == {"good"}, tier
            assert gw.cache.get(I35, 1, "avg_i1").timestamp == T0
            assert gw.cache.load_summary(I35, 1)[0] == "good"

            # T0 + 35: averages and THD due, once each per load; energies not yet
            await advance(gw, clock, 15)
            got, got_a = i35.since(mark_i), a40.since(mark_a)
            assert (got["avg"], got["thd"], got["energy"]) == (len(LOADS), len(LOADS), 0)
            assert (got_a["thd"], got_a["energy"]) == (1, 0)
            assert gw.cache.get(I35, 1, "avg_i1").timestamp == T0 + 35

            # T0 + 55: the integration period ended at T0 + 50: energies are read at once, before their
            # 60 s are up (the consumption of the period is computed from indexes read after its end)
            mark_i, mark_a = len(i35.reads), len(a40.reads)
            await advance(gw, clock, 20)
            got, got_a = i35.since(mark_i), a40.since(mark_a)
            assert (got["avg"], got["thd"], got["energy"]) == (0, 0, len(LOADS))
            assert (got_a["thd"], got_a["energy"]) == (0, 1)
            assert gw.cache.get(I35, 2, "ea_pos").timestamp == T0 + 55
            assert set(gw.cache.get(A40, load, "ea_pos").timestamp for load in gw.cache.loads(A40)
                       if gw.cache.supported(A40, load, "ea_pos")) == {T0 + 55}

            # the averages' tier stops (the meter refuses their block): their values go stale once older
            # than 1.5 x (30 s + a cycle), the row shows it; the fast tier stays good
            i35.refuse.add("avg")
            await advance(gw, clock, 15)                                         # T0 + 70: avg 35 s old
            assert qualities(gw, I35, "avg") == {"good"}
            await advance(gw, clock, 20)                                         # T0 + 90: 55 s old
            assert qualities(gw, I35, "avg") == {"stale"}
            assert qualities(gw, I35, "inst") == qualities(gw, I35, "energy") == {"good"}
            assert gw.cache.load_summary(I35, 1)[0] == "stale"
            assert i35.since(mark_i)["avg"] >= len(LOADS)                # it was asked, and refused
            # the raw words Modbus TCP answers from follow the same rule, block by block
            assert gw.cache.fresh_raw(I35, load_base(1) + 0x080 + 26, 2) is None
            assert gw.cache.fresh_raw(I35, load_base(1) + 26, 2) is not None
            assert gw.cache.fresh_raw(I35, load_base(1) + 0x583, 3) is not None

            # the meter answers again: the next due read makes them good
            i35.refuse.discard("avg")
            await advance(gw, clock, 40)
            assert qualities(gw, I35, "avg") == {"good"}
    asyncio.run(scenario())


def test_tiers_split_the_plan_without_losing_a_read_and_coalesce_within_each():
    """Every measurement of the untiered plan is in exactly one tier's reads, each read holds one tier
    only, and within a tier no two reads could have been one (same block, within 125 registers)."""
    device = Device("digiware", 4, "I-35", "DC85E9")                  # the catalogue's 3 loads
    loads = [(n, device.network(n)) for n in device.load_numbers()]
    whole = set((load, key) for read in plan_reads("I-35", loads) for load, key, *_ in read.items)
    tiers = plan_tiers(device)
    seen = [(load, key) for reads in tiers.values() for read in reads for load, key, *_ in read.items]
    assert sorted(seen) == sorted(whole) and len(seen) == len(set(seen))
    for tier, reads in tiers.items():
        for read in reads:
            assert set(poll_tiers.tier_of(key) for _l, key, *_ in read.items) == {tier}
            assert read.count <= rtu.MAX_READ_REGISTERS
    # one read per load and documented block: the 4 blocks of §3.3, 3 loads
    assert dict((tier, len(reads)) for tier, reads in tiers.items()) == {"inst": 3, "avg": 3, "thd": 3, "energy": 3}


def test_a_generic_device_is_one_tier_read_every_cycle():
    """A generic device's frames are the user's (one request each): all read every cycle, energies too."""
    model, problems = datamodel.check_model({"name": "PM", "rows": [
        {"name": "IEaPInst", "frame": "main", "function": 3, "register": 100, "encoding": "U32", "coefficient": 1},
        {"name": "IV1Inst", "frame": "main", "function": 3, "register": 102, "encoding": "U16", "coefficient": 0.1},
        {"name": "Flow", "frame": "", "function": 4, "register": 0, "encoding": "U16", "coefficient": 0.1}]})
    assert problems == []
    device = Device("rs485", 7, catalogue.GENERIC, None, model=model)
    tiers = plan_tiers(device)
    assert list(tiers) == [poll_tiers.FAST] and len(tiers[poll_tiers.FAST]) == 2
    assert sorted(key for read in tiers[poll_tiers.FAST] for _l, key, *_ in read.items) == ["ea_pos", "user:Flow", "v1"]


def test_slow_tiers_spread_over_their_period_and_keep_their_grid():
    """Devices of a bus get phases 1/n..1: their first re-reads fall at distinct cycles; then each read
    comes one period after the last one's due time (no drift), and an energy read is due at once after a
    boundary of the integration period."""
    period = poll_tiers.period("avg")
    schedules = [TierSchedule(("inst", "avg", "energy"), phase=(i + 1) / 4.0) for i in range(4)]
    start = 3600.0 * 1000 + 10
    for s in schedules:
        assert s.due(start, 3600) == ["avg", "energy"]
        s.read("avg", start)
        s.read("energy", start)
    first = [s.next_due["avg"] - start for s in schedules]
    assert first == [period / 4.0, period / 2.0, 3 * period / 4.0, period]
    s = schedules[0]
    s.read("avg", start + period / 4.0 + 1.3)                   # read a little late (at a cycle's start)
    assert s.next_due["avg"] == start + period / 4.0 + period   # back on its grid
    # energies: every 60 s, and at once after a boundary of the integration period (here 3600 s)
    boundary = 3600.0 * 1001
    s = TierSchedule(("inst", "energy"), phase=1.0)
    s.read("energy", boundary - 100)
    s.read("energy", boundary - 40)                             # next due at boundary + 20
    assert s.due(boundary - 1, 3600) == []
    assert s.due(boundary + 5, 3600) == ["energy"]              # a period began: due before its 60 s
    s.read("energy", boundary + 5)
    assert s.due(boundary + 10, 3600) == []
    assert s.due(boundary + 20, 3600) == ["energy"]             # its own grid kept


def test_the_freshness_rule_per_tier_in_the_cache():
    clock = ManualClock(1000.0)
    cache = Cache(clock, stale_after=2.0)
    cache.declare_device(1, {0: ["v1", "ea_pos"]})
    cache.declare_tiers(1, {"v1": "inst", "ea_pos": "energy"})
    cache.set_refresh_period([1], 1.0)
    cache.set_refresh_period([1], 61.0, "energy")
    cache.update(1, 0, {"v1": 230.0, "ea_pos": 5.0}, 1000.0)
    cache.update_raw(1, 0x100, [1, 2], 1000.0, "energy")
    cache.update_raw(1, 0x200, [3, 4], 1000.0)
    clock.advance(60)
    assert cache.get(1, 0, "v1").quality == "stale"              # 60 s > max(2, 1.5 x 1 s)
    assert cache.get(1, 0, "ea_pos").quality == "good"           # 60 s <= 1.5 x 61 s
    assert cache.fresh_raw(1, 0x100, 2) == [1, 2] and cache.fresh_raw(1, 0x200, 2) is None
    clock.advance(32)
    assert cache.get(1, 0, "ea_pos").quality == "stale"          # 92 s > 91.5 s
    assert cache.fresh_raw(1, 0x100, 2) is None
    assert registry.get("ea_pos")[registry.KIND] == "energy" and poll_tiers.tier_of("ea_pos") == "energy"


def test_a_whole_row_reads_as_each_value_does():
    """Cache.row (the Monitor's and snapshot's read) gives each key the Reading ``get`` gives, in every state:
    fresh, stale in its tier, never arrived, communication lost."""
    clock = ManualClock(1000.0)
    cache = Cache(clock, stale_after=2.0)
    cache.declare_device(1, {0: ["v1", "i1", "ea_pos", "thd_i1"]})
    cache.declare_tiers(1, {"v1": "inst", "i1": "inst", "ea_pos": "energy", "thd_i1": "average"})
    cache.set_refresh_period([1], 1.0)
    cache.set_refresh_period([1], 61.0, "energy")
    cache.set_refresh_period([1], 31.0, "average")
    cache.update(1, 0, {"v1": 230.0, "ea_pos": 5.0, "thd_i1": 2.3}, 1000.0)

    def same():
        row = cache.row(1, 0)
        singles = dict((k, cache.get(1, 0, k)) for k in cache.keys(1, 0))
        assert list(row) == list(singles)
        return dict((k, (r.value, r.timestamp, r.quality)) for k, r in row.items()) == \
            dict((k, (r.value, r.timestamp, r.quality)) for k, r in singles.items())
    assert same() and cache.row(1, 0)["v1"].quality == "good" and cache.row(1, 0)["i1"].quality == "stale"
    clock.advance(40)                  # 40 s: v1 stale (inst tier), thd_i1 (46.5 s) and ea_pos (91.5 s) still good
    assert same() and cache.row(1, 0)["v1"].quality == "stale" and cache.row(1, 0)["ea_pos"].quality == "good"
    clock.advance(10)                  # 50 s: thd_i1 past 46.5 s
    assert same() and cache.row(1, 0)["thd_i1"].quality == "stale" and cache.row(1, 0)["ea_pos"].quality == "good"
    cache.set_comm_lost(1, True)
    assert same() and set(r.quality for r in cache.row(1, 0).values()) == {"comm_lost"}
    assert cache.row(1, 9) == {} and cache.row(2, 0) == {}


def test_every_registry_kind_is_in_one_tier():
    assert poll_tiers.check_table() == []
    assert poll_tiers.tier_of("user:flow") == poll_tiers.FAST


def test_a_slow_tiers_rate_is_its_setting_and_a_shorter_one_applies_at_once(tmp_path):
    """poll.<tier>_s sets how often a slow tier is read; the freshness rule follows it (a value goes stale
    1.5 x (its tier's period + a cycle) after its read, by the new period); a shorter period set while the
    gateway runs applies at the next cycle, not after the old period is up; a bad value is refused."""
    async def scenario():
        async with tiered_site(tmp_path, {"poll.avg_s": 10, "poll.thd_s": 300}) as (gw, clock, i35, _a40):
            assert min(i35.since(0)[tier] for tier in ("avg", "thd")) >= len(LOADS), i35.since(0)

            # 12 s on: averages (every 10 s) were read again, THD (every 300 s) not
            mark = len(i35.reads)
            await advance(gw, clock, 12)
            got = i35.since(mark)
            assert got["avg"] == len(LOADS) and got["thd"] == 0, got
            # THD's values, 12 s old, are good by their own tier's rule (300 s)
            assert qualities(gw, I35, "thd") == {"good"}

            # THD's rate made 20 s while it runs: due at once (its last read is more than 20 s old by T0 + 25),
            # not at T0 + 300
            await gw.settings.set_many({"poll.thd_s": 20})
            mark = len(i35.reads)
            await advance(gw, clock, 13)                                         # T0 + 25
            assert i35.since(mark)["thd"] == len(LOADS), i35.since(mark)
            # and the freshness rule now follows 20 s: a THD block the meter refuses goes stale within
            # 1.5 x (20 s + a cycle), where 300 s would have kept it good for minutes
            i35.refuse.add("thd")
            await advance(gw, clock, 25)                                         # 25 s old: still within the rule
            assert qualities(gw, I35, "thd") == {"good"}
            await advance(gw, clock, 10)                                         # 35 s old: > 1.5 x (20 s + a cycle)
            assert qualities(gw, I35, "thd") == {"stale"}

            # out of its bounds: refused, nothing changed
            for bad in (0, 3601):
                try:
                    await gw.settings.set_many({"poll.avg_s": bad, "poll.thd_s": 40})
                except Exception as exc:                                   # SettingError names the field
                    assert "poll.avg_s" in str(exc)
                else:
                    raise AssertionError("poll.avg_s=%d accepted" % bad)
            assert (gw.settings.get("poll.avg_s"), gw.settings.get("poll.thd_s")) == (10, 20)
    asyncio.run(scenario())
