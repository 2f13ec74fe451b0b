"""The benches' well-behaved clients (bench/soak_probe.py) leave a gateway on the caller's own loop able to answer
their last requests (issue 19, target 4: the well-behaved HTTP client's occasional 10 s failure).

bench/fairness.py runs the gateway on its own event loop and the probes in a forked process. Leaving the probes'
``with`` block waited for their results in that loop, while a probe's request in flight waited for the same loop
to be answered: the gateway was held until the request timed out (10 s for HTTP), and the bench counted the
failure as the gateway's. Counted here, with a request held in flight when the block is left: blocking, it
fails; with ``async with`` it is answered and nothing fails.
"""

import asyncio
import socket

from bench import soak_probe
from webconfig.server import DEFERRED, HttpServer


def _unused_port(kind):
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _leave_with_a_request_in_flight(blocking):
    """Run an HTTP server and the probes; hold one probe request in flight, leave the probes' block (``with`` when
    ``blocking``, else ``async with``) and let the held request be answered right after. Returns (the HTTP probe's
    failures, requests answered after the hold)."""
    async def main():
        loop = asyncio.get_running_loop()
        hold, entered, release, answered = [False], asyncio.Event(), asyncio.Event(), [0]

        async def held():
            await release.wait()
            answered[0] += 1
            return "200 OK", [("Content-Type", "application/json")], b"{}"

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "application/json")])
            if hold[0] and not entered.is_set():
                environ[DEFERRED] = held()
                entered.set()
                return [b""]
            return [b"{}"]

        web = HttpServer(app, host="127.0.0.1", port=0)
        await web.start()
        ports = {"http": web.port, "modbus": _unused_port(socket.SOCK_STREAM),
                 "snmp": _unused_port(socket.SOCK_DGRAM), "bacnet": _unused_port(socket.SOCK_DGRAM)}
        probes = soak_probe.Probes(ports)
        try:
            if blocking:
                with probes:
                    hold[0] = True
                    await entered.wait()
                    loop.call_later(0.05, release.set)      # the gateway answers as soon as its loop runs
            else:
                async with probes:
                    hold[0] = True
                    await entered.wait()
                    loop.call_later(0.05, release.set)
            await asyncio.sleep(0.2)            # the held answer goes out (to a client gone, when it failed)
        finally:
            await web.stop()
        return probes.results["http"]["failures"], answered[0]
    return asyncio.run(main())


def _quick_probes(monkeypatch):
    monkeypatch.setattr(soak_probe, "TIMEOUTS", {"http": 1.0, "modbus": 0.2, "snmp": 0.2, "bacnet": 0.2})
    monkeypatch.setattr(soak_probe, "http_status", lambda port, timeout: soak_probe.http_json(port, "/p", timeout))
    monkeypatch.setattr(soak_probe, "summary", lambda doc: None)
    monkeypatch.setattr(soak_probe, "PERIOD", 0.02)


def test_leaving_the_probes_block_from_the_gateways_loop_holds_their_request_in_flight_until_it_fails(monkeypatch):
    _quick_probes(monkeypatch)
    failures, answered = _leave_with_a_request_in_flight(blocking=True)
    assert failures == 1            # the probe gave up: the loop that would answer it was waiting for the probe
    assert answered == 1            # answered once the loop ran again, to a client gone


def test_leaving_it_with_async_with_the_request_in_flight_is_answered_and_nothing_fails(monkeypatch):
    _quick_probes(monkeypatch)
    failures, answered = _leave_with_a_request_in_flight(blocking=False)
    assert (failures, answered) == (0, 1)


def test_a_traced_server_stamps_each_connection_in_order_and_counts_no_long_share_wait_for_a_quiet_client():
    """What the bench prints for a failed probe request: the server's events of that connection, in order."""
    import collections
    import http.client

    async def main():
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]
        web = HttpServer(app, host="127.0.0.1", port=0)
        web.trace = collections.deque()
        await web.start()

        def ask():
            conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
            conn.request("GET", "/", headers={"Connection": "close"})
            port, body = conn.sock.getsockname()[1], conn.getresponse().read()
            conn.close()
            return port, body
        port, body = await asyncio.to_thread(ask)
        while not web.trace:
            await asyncio.sleep(0.01)
        await web.stop()
        return port, body, list(web.trace), web.stats["share_waits_over_1s"]
    port, body, trace, slow = asyncio.run(main())
    assert body == b"ok" and slow == 0
    [(ip, traced_port, stamps)] = trace
    assert (ip, traced_port) == ("127.0.0.1", port)
    assert [event for event, _ in stamps] == ["accept", "port", "open", "byte", "head", "ready", "answer", "drained",
                                              "end"]
    times = [at for event, at in stamps if event != "port"]
    assert times == sorted(times)
