"""A Modbus TCP device for the generic-device tests: pymodbus's own server (an independent stack) on loopback,
answering one unit from a register image the test writes by hand."""

import asyncio
import contextlib

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer


@contextlib.asynccontextmanager
async def tcp_device(port, unit, holding):
    """The server on 127.0.0.1:``port`` answering ``unit`` from ``holding`` (register 0 first), until the block
    ends (the test stops it to see communication lost)."""
    block = ModbusSequentialDataBlock(1, list(holding))          # pymodbus: block address 1 = register 0
    context = ModbusServerContext(devices={unit: ModbusDeviceContext(hr=block)}, single=False)
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    task = asyncio.get_running_loop().create_task(server.serve_forever())
    try:
        yield server
    finally:
        await server.shutdown()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
