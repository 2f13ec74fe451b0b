"""A Binary Output's priority array takes only what the output can be, at every priority.

Regression: a WriteProperty at a priority that does not win used to store
any enumerated value (5, say) unchecked; relinquishing the winning slot then
uncovered it, the write to the meter was refused, and the point was stuck.
Error codes are ASHRAE 135's: class property (2), value-out-of-range (37).
"""

import asyncio

import pytest

from bacnet_support import Site  # noqa: I001 (first: it puts tests/bacnet on the path)
from bacnet_peer import BINARY_OUTPUT, BINARY_PV_TAG, NULL_TAG, PROP, BacnetError, values_of

VALUE_OUT_OF_RANGE = "Class:2 - Code:37"


def test_an_out_of_range_command_is_refused_at_a_priority_that_does_not_win(tmp_path):
    async def scenario():
        async with Site(tmp_path, {"policy.modbus_write": True}) as s:
            io10 = s.gw.board.find_meter(address=15)

            async def write(priority, value, tag=BINARY_PV_TAG):
                await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                  property=PROP["present_value"], tag=tag, value=value, priority=priority)

            async def slots():
                return values_of(await s.node.call("rp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                                   property=PROP["priority_array"]))
            await write(8, 1)
            assert io10.outputs & 1 == 1
            for priority in (10, 8, 3):                    # below, at and above the winning slot
                with pytest.raises(BacnetError, match=VALUE_OUT_OF_RANGE):
                    await write(priority, 5)
            assert io10.outputs & 1 == 1
            assert (await slots())[9] is None and (await slots())[2] is None      # nothing was stored
            # relinquishing the winner falls back to the relinquish default: the point is not stuck
            await write(8, None, tag=NULL_TAG)
            assert io10.outputs & 1 == 0
            assert all(v is None for v in await slots())
            await write(10, 1)
            assert io10.outputs & 1 == 1
            assert s.service.site.counters.get("writes_refused", 0) == 0          # refused before the meter
    asyncio.run(scenario())
