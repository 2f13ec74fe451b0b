"""Load generator for bench/modbus_tcp.py: N Modbus TCP connections in their
own process (so the client's work does not run on the gateway's loop), each
sending one read at a time for a duration; prints JSON with the latencies.
The connections come from --sources in turn (the server caps connections per client address)."""

import argparse
import asyncio
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import percentile  # noqa: E402


async def connection(host, port, source, unit, start, count, until, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    pdu = struct.pack(">BHH", 3, start, count)
    transaction = 0
    try:
        while time.monotonic() < until:
            transaction = (transaction + 1) & 0xFFFF
            sent = time.perf_counter()
            writer.write(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu)
            header = await reader.readexactly(7)
            length = struct.unpack(">H", header[4:6])[0]
            body = await reader.readexactly(length - 1)
            latencies.append(time.perf_counter() - sent)
            if body[0] & 0x80 or header[:2] != struct.pack(">H", transaction):
                errors.append(body[:2].hex())
    finally:
        writer.close()


async def main_async(args):
    latencies, errors = [], []
    until = time.monotonic() + args.seconds
    started = time.monotonic()
    sources = args.sources.split(",")
    await asyncio.gather(*[connection(args.host, args.port, sources[i % len(sources)], args.unit, args.start,
                                      args.count, until, latencies, errors) for i in range(args.connections)])
    elapsed = time.monotonic() - started
    print(json.dumps({"requests": len(latencies), "errors": len(errors), "seconds": elapsed,
                      "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                      "max": max(latencies, default=None)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--unit", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--sources", default="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4",
                        help="client addresses, used in turn (comma-separated)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
