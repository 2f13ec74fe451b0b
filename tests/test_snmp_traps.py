"""Traps received by net-snmp's snmptrapd on loopback: system alarm 3, its re-send, its clear, input changes.

A meter goes silent (alarm 3 raised → gwAlarmRaised), stays silent longer
than the trap period (gwAlarmActive re-sent), answers again (gwAlarmCleared);
a digital input of the IO-10 changes (gwInputChanged). v2c traps carry the
whole scenario; v1 and v3 traps are checked with the input change. On a
manual clock, the re-send is counted: exactly one per trap period, to each
of the two trap hosts, none before the period and none after the clear.
"""

import asyncio

import pytest

from board.base import ManualClock
from conftest import free_udp_port, wait_for
from snmp_support import (ACTIVE, ADDRESS, CLEARED, ENTERPRISE, INPUT, INPUT_NO, OF_5, RAISED, SILENT_NETID, VALUE,
                          Site, TrapReceiver)

IO10_NETID = 0xC0E45D                    # the IO-10 at address 15 in the demo site


def test_alarm_trap_its_resend_and_its_clear_and_input_changes_v2c(tmp_path):
    async def body():
        async with TrapReceiver(tmp_path) as rx:
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": rx.port, "snmp.trap.period_s": 1}
            async with Site(tmp_path, settings) as s:
                s.gw.board.configure_meter(SILENT_NETID, silent=True)
                await wait_for(lambda: rx.count(RAISED, **OF_5) == 1)
                await wait_for(lambda: rx.count(ACTIVE, **OF_5) >= 2)             # re-sent every period
                # While active, the alarm is a row of gwAlarmTable (index: number, source).
                row = "%s.10.30.4.1.3.3.%s" % (ENTERPRISE, ".".join(str(b) for b in b"digiware:5"))
                rc, values, text = await s.get(s.v2c(), row, "%s.10.30.1.7.0" % ENTERPRISE)
                assert values[row] == '"Modbus slave timeout"' and values["%s.10.30.1.7.0" % ENTERPRISE] == "1"

                s.gw.board.configure_meter(SILENT_NETID, silent=False)
                await wait_for(lambda: rx.count(CLEARED, **OF_5) == 1)
                reminders = rx.count(ACTIVE, **OF_5)
                await asyncio.sleep(2.5)                                          # > 2 trap periods
                assert rx.count(ACTIVE, **OF_5) == reminders and rx.count(RAISED, **OF_5) == 1
                rc, values, text = await s.get(s.v2c(), row)
                assert values[row].startswith("No Such Instance")

                s.gw.board.configure_meter(IO10_NETID, inputs=0b0101)
                await wait_for(lambda: rx.count(INPUT, **{ADDRESS: "15", INPUT_NO: "1", VALUE: "1"}) == 1
                               and rx.count(INPUT, **{ADDRESS: "15", INPUT_NO: "3", VALUE: "1"}) == 1)
                assert rx.count(INPUT, **{ADDRESS: "15", INPUT_NO: "2"}) == 0
                # the agent's own count agrees with what snmptrapd received: one for meter 5 (another meter that
                # misses a poll on a loaded machine raises its own, which both sides count alike)
                assert s.service.status()["traps_sent"]["gwAlarmRaised"] == rx.count(RAISED) >= 1
    asyncio.run(body())


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_v1_and_v3_traps(tmp_path, version):
    async def body():
        port = free_udp_port()
        settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": port, "snmp.trap.version": version}
        async with Site(tmp_path, settings) as s:
            rx = TrapReceiver(tmp_path, s.service.engine_id().hex() if version == "v3" else None)
            rx.port = port
            async with rx:
                s.gw.board.configure_meter(IO10_NETID, inputs=0b0010)
                await wait_for(lambda: rx.count(INPUT, **{ADDRESS: "15", INPUT_NO: "2", VALUE: "1"}) == 1)
                text = rx.log.read_text()
                if version == "v1":
                    assert "127.0.0.1 [127.0.0.1]" in text and "TRAP, SNMP v1, community trap" in text
                    assert ".%s.10.30 Enterprise Specific Trap (4)" % ENTERPRISE in text
                else:              # the receiver logs authenticated, encrypted v3 traps only
                    assert "SNMP v1" not in text and s.service.status()["traps_sent"]["gwInputChanged"] == 1
    asyncio.run(body())


def test_active_alarms_are_re_sent_once_per_trap_period_to_both_hosts_on_the_gateway_clock(tmp_path):
    """SPEC §3.2: traps go to up to 2 hosts and are re-sent every trap period for alarms still active.

    The gateway runs on a manual clock, so the period passes only when the test moves it. A negative
    count is read only once the re-send check has run at the new time and a later trap (an input
    change of the IO-10, the marker) has reached both receivers: the counts are of traps that were
    sent, not of traps that had time to arrive.
    """
    period = 600                                        # snmp.trap.period_s, in seconds of the gateway's clock
    clock = ManualClock(1_700_000_000.0)
    for name in ("host1", "host2"):
        (tmp_path / name).mkdir()

    async def body():
        async with TrapReceiver(tmp_path / "host1") as rx1, TrapReceiver(tmp_path / "host2") as rx2:
            receivers = (rx1, rx2)
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": rx1.port,
                        "snmp.trap.host2": "127.0.0.1", "snmp.trap.port2": rx2.port, "snmp.trap.period_s": period}
            async with Site(tmp_path, settings, clock=clock) as s:
                sender = s.service.traps
                checks = [0]
                resend_due = sender.resend_due

                def counted():
                    checks[0] += 1
                    resend_due()
                sender.resend_due = counted                  # the re-send loop calls it about once a second
                inputs = [int(s.gw.cache.get(15, 0, "in_1").value)]

                def counts(trap, **where):
                    return [rx.count(trap, **where) for rx in receivers]

                async def settle():
                    """Every trap due at the clock's time was sent and has reached both receivers."""
                    mark = checks[0]
                    await wait_for(lambda: checks[0] >= mark + 2)
                    inputs.append(1 - inputs[-1])
                    s.gw.board.configure_meter(IO10_NETID, inputs=inputs[-1])
                    await wait_for(lambda: counts(INPUT, **{ADDRESS: "15", INPUT_NO: "1"}) == [len(inputs) - 1] * 2)

                s.gw.board.configure_meter(SILENT_NETID, silent=True)
                await wait_for(lambda: counts(RAISED, **OF_5) == [1, 1])
                await settle()
                assert counts(ACTIVE, **OF_5) == [0, 0]
                clock.advance(period - 1)                     # not yet a period since it was raised
                await settle()
                assert counts(ACTIVE, **OF_5) == [0, 0]
                clock.advance(1)                              # one period: one re-send to each host
                await wait_for(lambda: counts(ACTIVE, **OF_5) == [1, 1])
                await settle()
                assert counts(ACTIVE, **OF_5) == [1, 1]
                clock.advance(period - 1)
                await settle()
                assert counts(ACTIVE, **OF_5) == [1, 1]
                clock.advance(1)                              # the second period: the second re-send
                await wait_for(lambda: counts(ACTIVE, **OF_5) == [2, 2])
                await settle()
                assert counts(ACTIVE, **OF_5) == [2, 2]

                s.gw.board.configure_meter(SILENT_NETID, silent=False)
                await wait_for(lambda: counts(CLEARED, **OF_5) == [1, 1])
                clock.advance(3 * period)                     # ended: never re-sent again
                await settle()
                assert counts(ACTIVE, **OF_5) == [2, 2] and counts(RAISED, **OF_5) == [1, 1]
                assert s.service.status()["traps_sent"]["gwAlarmActive"] == 2      # sent once each, to both hosts
    asyncio.run(body())
