"""HttpServer: WSGI hosting, keep-alive, and refusal of hostile or broken clients.

Each test runs its own event loop with ``asyncio.run`` and talks to a server on
127.0.0.1 port 0, mostly over raw asyncio sockets so malformed input can be sent.
"""

import asyncio
import gzip
import http.client
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import bottle
import pytest
from hypothesis import given, strategies as st

from webconfig.server import HttpError, HttpServer

STATIC = Path(__file__).resolve().parent.parent / "webconfig" / "static"


def make_app():
    app = bottle.Bottle()
    app.config["catchall"] = False      # let exceptions reach the server, which must answer 500

    @app.get("/echo")
    def get_echo():
        return "get " + bottle.request.query_string

    @app.post("/echo")
    def post_echo():
        return bottle.request.body.read()

    @app.get("/p/<name>")
    def get_name(name):
        return "name=" + name

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    return app


def serve(test, app=None, **options):
    """Run ``test(server)`` against a started server, always stopping it."""
    async def main():
        server = HttpServer(app or make_app(), **options)
        await server.start()
        try:
            return await asyncio.wait_for(test(server), 15)
        finally:
            await server.stop()
    return asyncio.run(main())


async def wait_until_true(predicate, guard=5.0):
    """Poll ``predicate`` on the loop until it holds; a guard that expires fails."""
    end = asyncio.get_running_loop().time() + guard
    while not predicate():
        assert asyncio.get_running_loop().time() < end, "condition not reached within %.0f s" % guard
        await asyncio.sleep(0.01)


async def connect(server):
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader, head_request=False):
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    assert re.fullmatch(r"HTTP/1\.1 \d\d\d .*", status_line), status_line     # stream framing intact
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    body = b"" if head_request else await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def request(reader, writer, raw):
    writer.write(raw)
    await writer.drain()
    return await read_response(reader)


async def assert_closed(reader):
    """The server closed its side: EOF (or a reset) and no further bytes."""
    try:
        assert await reader.read() == b""
    except ConnectionResetError:
        pass


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: test\r\n" + extra + b"\r\n"


def test_get_keep_alive_and_pipelining():
    async def test(server):
        reader, writer = await connect(server)
        status, _, body = await request(reader, writer, get(b"/echo?a=1"))
        assert (status, body) == (200, b"get a=1")
        status, headers, body = await request(reader, writer, get(b"/p/caf%C3%A9"))
        assert (status, body) == (200, "name=café".encode())
        assert "connection" not in headers
        writer.write(get(b"/echo?n=1") + get(b"/echo?n=2"))     # two requests in one segment
        assert (await read_response(reader))[2] == b"get n=1"
        assert (await read_response(reader))[2] == b"get n=2"
        assert server.stats["connections_open"] == 1
        assert server.stats["requests"] == 4
        writer.close()
    serve(test)


def test_connection_close_and_http10_close_after_reply():
    async def test(server):
        for raw in (get(b"/echo", b"Connection: close\r\n"), b"GET /echo HTTP/1.0\r\n\r\n"):
            reader, writer = await connect(server)
            status, headers, body = await request(reader, writer, raw)
            assert (status, body, headers["connection"]) == (200, b"get ", "close")
            await assert_closed(reader)
            writer.close()
    serve(test)


def test_head_sends_length_but_no_body():
    async def test(server):
        reader, writer = await connect(server)
        writer.write(b"HEAD /echo?x HTTP/1.1\r\nHost: t\r\n\r\n" + get(b"/echo?y"))
        status, headers, _ = await read_response(reader, head_request=True)
        assert (status, headers["content-length"]) == (200, str(len(b"get x")))
        assert (await read_response(reader))[2] == b"get y"     # stream still framed correctly
        writer.close()
    serve(test)


def test_post_body_echoed_with_http_client():
    payload = bytes(range(256)) * 40

    def post(port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/echo", body=payload, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        result = response.status, response.read()
        conn.request("POST", "/echo", body=b"second")
        result += (conn.getresponse().read(),)
        conn.close()
        return result

    async def test(server):
        return await asyncio.get_running_loop().run_in_executor(None, post, server.port)
    assert serve(test) == (200, payload, b"second")


def test_expect_100_continue():
    async def test(server):
        reader, writer = await connect(server)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await read_response(reader))[::2] == (200, b"hello")
        writer.close()
    serve(test)


def test_environ_is_pep3333():
    seen = {}

    def app(environ, start_response):
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    async def test(server):
        reader, writer = await connect(server)
        raw = (b"PUT /a%20b/c HTTP/1.1\r\nHost: gw:80\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
               b"X-Custom: one\r\nX-Custom: two\r\nX_Custom: spoof\r\n\r\nabc")
        assert (await request(reader, writer, raw))[0] == 200
        writer.close()
        return server.port

    port = serve(test, app=app)
    assert seen["REQUEST_METHOD"] == "PUT" and seen["PATH_INFO"] == "/a b/c" and seen["QUERY_STRING"] == ""
    assert seen["CONTENT_TYPE"] == "text/plain" and seen["CONTENT_LENGTH"] == "3" and seen["body"] == b"abc"
    assert seen["HTTP_X_CUSTOM"] == "one, two" and seen["HTTP_HOST"] == "gw:80"
    assert "HTTP_CONTENT_LENGTH" not in seen
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"], seen["REMOTE_ADDR"]) == ("127.0.0.1", str(port), "127.0.0.1")
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1" and seen["SCRIPT_NAME"] == ""
    assert seen["wsgi.url_scheme"] == "http" and seen["wsgi.version"] == (1, 0)
    assert seen["wsgi.multithread"] is False and seen["wsgi.run_once"] is False


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /echo\r\nHost: t\r\n\r\n",
    b"GET /echo HTTP/1.1 extra\r\nHost: t\r\n\r\n",
    b"GET echo HTTP/1.1\r\nHost: t\r\n\r\n",
    b"G(T /echo HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost t\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost : t\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
    b"GET /echo HTTP/1.1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
])
def test_malformed_request_gets_400_and_never_reaches_app(raw):
    async def test(server):
        reader, writer = await connect(server)
        status, headers, body = await request(reader, writer, raw)
        assert (status, headers["content-type"], headers["connection"]) == (400, "text/plain; charset=utf-8", "close")
        assert body and len(body) < 200
        await assert_closed(reader)
        writer.close()
        assert server.stats["bad_requests"] == 1 and server.stats["requests"] == 0
    serve(test)


def test_http2_version_gets_505():
    async def test(server):
        reader, writer = await connect(server)
        assert (await request(reader, writer, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n"))[0] == 505
        writer.close()
    serve(test)


def test_huge_headers_get_431():
    async def test(server):
        reader, writer = await connect(server)
        status, _, body = await request(reader, writer, get(b"/echo", b"X-Big: " + b"a" * 5000 + b"\r\n"))
        assert status == 431 and b"4096" in body
        await assert_closed(reader)
        writer.close()
        reader, writer = await connect(server)       # the server is fine afterwards
        assert (await request(reader, writer, get(b"/echo", b"X-Ok: " + b"a" * 3000 + b"\r\n")))[0] == 200
        writer.close()
    serve(test, max_header_bytes=4096)


def test_huge_body_gets_413_before_it_is_read():
    async def test(server):
        for length in (b"1001", b"9" * 40):
            reader, writer = await connect(server)
            raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + length + b"\r\n\r\n" + b"x" * 1001
            status, _, body = await request(reader, writer, raw)
            assert status == 413 and b"1000" in body
            await assert_closed(reader)
            writer.close()
        reader, writer = await connect(server)
        raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000
        assert (await request(reader, writer, raw))[2] == b"y" * 1000
        writer.close()
        assert server.stats["requests"] == 1 and server.stats["bad_requests"] == 2
    serve(test, max_body_bytes=1000)


def test_chunked_body_refused_with_411():
    async def test(server):
        reader, writer = await connect(server)
        raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        status, _, body = await request(reader, writer, raw)
        assert status == 411 and b"Content-Length" in body
        await assert_closed(reader)
        writer.close()
        assert server.stats["requests"] == 0
    serve(test)


def test_app_exception_gives_500_and_connection_keeps_working(caplog):
    async def test(server):
        reader, writer = await connect(server)
        status, headers, body = await request(reader, writer, get(b"/boom"))
        assert (status, headers["content-type"], body) == (500, "text/plain; charset=utf-8", b"internal server error\n")
        assert (await request(reader, writer, get(b"/echo?after")))[2] == b"get after"
        writer.close()
    with caplog.at_level(logging.ERROR, logger="gateway.http"):
        serve(test)
    assert any("kaboom" in (r.exc_text or "") for r in caplog.records if r.name == "gateway.http")


def test_iterable_closed_even_when_iteration_fails():
    closed = []

    class Body:
        def __init__(self, fail):
            self.fail = fail

        def __iter__(self):
            yield b"part1,"
            if self.fail:
                raise ValueError("broken iterator")
            yield b"part2"

        def close(self):
            closed.append(self.fail)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "999")])
        return Body(environ["PATH_INFO"] == "/fail")

    async def test(server):
        reader, writer = await connect(server)
        status, headers, body = await request(reader, writer, get(b"/ok"))
        assert (status, headers["content-length"], body) == (200, "11", b"part1,part2")
        writer.write(b"HEAD /ok HTTP/1.1\r\nHost: t\r\n\r\n")     # app yields a body; server must drop it
        status, headers, _ = await read_response(reader, head_request=True)
        assert (status, headers["content-length"]) == (200, "999")
        assert (await request(reader, writer, get(b"/fail")))[0] == 500
        writer.close()
    serve(test, app=app)
    assert closed == [False, False, True]


def test_connection_over_limit_gets_503_while_others_keep_working():
    async def test(server):
        conns = [await connect(server) for _ in range(2)]
        for reader, writer in conns:
            assert (await request(reader, writer, get(b"/echo")))[0] == 200
            writer.write(b"GET /echo?still HTTP/1.1\r\n")       # mid-request: busy, never closed to make room
        await wait_until_true(lambda: server.stats["connections_idle"] == 0)
        reader, writer = await connect(server)
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (503, "close")
        await assert_closed(reader)
        writer.close()
        for reader, writer in conns:
            assert (await request(reader, writer, b"Host: t\r\n\r\n"))[2] == b"get still"
        assert server.stats["rejected"] == 1 and server.stats["connections_open"] == 2
        assert server.stats["evicted"] == 0
        for _, writer in conns:
            writer.close()
    serve(test, max_connections=2)


def test_slowloris_closed_after_header_timeout():
    async def test(server):
        reader, writer = await connect(server)
        writer.write(b"GET /echo HTTP/1.1\r\nHost: t\r\n")

        async def trickle():            # a fresh header line every 50 ms, for up to 10 s
            for i in range(200):
                await asyncio.sleep(0.05)
                writer.write(b"X-%d: y\r\n" % i)

        trickler = asyncio.create_task(trickle())
        try:
            status, _, _ = await read_response(reader)
            assert status == 408
            await assert_closed(reader)
            assert not trickler.done()      # closed while the client was still "sending"
        finally:
            trickler.cancel()
            writer.close()
        assert server.stats["requests"] == 0 and server.stats["timeouts"] == 1
    serve(test, header_timeout=0.3)


def test_silent_and_idle_connections_are_closed():
    async def test(server):
        silent_reader, silent_writer = await connect(server)
        reader, writer = await connect(server)
        assert (await request(reader, writer, get(b"/echo")))[0] == 200
        await assert_closed(silent_reader)      # never sent a byte: closed after header_timeout
        await assert_closed(reader)             # idle keep-alive: closed after idle_timeout
        for w in (writer, silent_writer):
            w.close()
        await wait_until_true(lambda: server.stats["connections_open"] == 0)
    serve(test, header_timeout=0.3, idle_timeout=0.3)


def test_stop_closes_open_connections_promptly():
    async def main():
        server = HttpServer(make_app())
        await server.start()
        idle_reader, idle_writer = await connect(server)
        assert (await request(idle_reader, idle_writer, get(b"/echo")))[0] == 200
        partial_reader, partial_writer = await connect(server)
        partial_writer.write(b"GET /echo HTTP/1.1\r\n")
        await partial_writer.drain()
        await wait_until_true(lambda: server.stats["connections_open"] == 2)
        await asyncio.wait_for(server.stop(), 1.0)
        for reader in (idle_reader, partial_reader):
            await asyncio.wait_for(assert_closed(reader), 1.0)
        assert server.stats["connections_open"] == 0
        with pytest.raises(OSError):
            await connect(server)
        idle_writer.close()
        partial_writer.close()
    asyncio.run(main())


@given(st.binary(max_size=300))
def test_parser_only_ever_refuses_with_http_error(data):
    head = data.replace(b"\r\n\r\n", b"") + b"\r\n\r\n"
    try:
        method, path, query, version, headers = HttpServer._parse_head(head)
    except HttpError as err:
        assert err.args[0] in (400, 501, 505)
    else:
        assert version in ("HTTP/1.0", "HTTP/1.1") and isinstance(headers, dict)


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":          # a link to another page of the gateway (/login, /settings) is no asset
            assert attrs.get("href", "").startswith("/") and not attrs["href"].startswith("//"), attrs
            return
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])


def test_status_page_assets_are_local_and_present():
    parser = _Assets()
    parser.feed((STATIC / "status.html").read_text(encoding="utf-8"))
    assert {"/static/status.js", "/static/status.css"} <= set(parser.refs)
    for ref in (r for r in parser.refs if not r.startswith("data:")):
        assert ref.startswith("/static/"), ref
        assert (STATIC / ref.removeprefix("/static/")).is_file(), ref
    for path in (p for p in STATIC.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        if path.parent.name == "vendor":        # a vendored library's banner comment names its home, fetches nothing
            text = re.sub(r"^/\*!.*?\*/", "", text, flags=re.S)
        text = text.replace("http://www.w3.org/2000/svg", "")      # the SVG namespace: a name, never fetched
        assert not re.search(r"(?i)https?://", text), f"external URL in {path.name}"
        assert not re.search(r"(?i)src\s*=\s*[\"']//|url\(\s*[\"']?//|@import", text), f"external ref in {path.name}"


def test_a_dynamic_answer_equal_to_the_last_one_is_not_compressed_again(monkeypatch):
    """The status document reused within a burst is a new bytes object with the same content each time: one
    compression serves them (counted); a changed document is compressed anew and decodes to itself."""
    from webconfig import server as server_module
    compressed = []
    real = gzip.compress
    monkeypatch.setattr(server_module.gzip, "compress",
                        lambda data, *a, **k: compressed.append(1) or real(data, *a, **k))
    document = {"text": '{"devices": [%s]}' % ", ".join(["1"] * 2000)}
    app = make_app()

    @app.get("/doc")
    def doc():
        bottle.response.content_type = "application/json"
        return document["text"]                        # encoded by bottle on each answer: a new bytes object

    async def test(server):
        reader, writer = await connect(server)
        for _ in range(5):
            status, headers, body = await request(reader, writer, get(b"/doc", b"Accept-Encoding: gzip\r\n"))
            assert status == 200 and headers["content-encoding"] == "gzip"
            assert gzip.decompress(body) == document["text"].encode()
        assert len(compressed) == 1
        document["text"] = document["text"].replace("1", "2", 1)
        status, headers, body = await request(reader, writer, get(b"/doc", b"Accept-Encoding: gzip\r\n"))
        assert gzip.decompress(body) == document["text"].encode() and len(compressed) == 2
        writer.close()
    serve(test, app)


def test_text_and_json_are_gzipped_for_clients_that_accept_it_and_assets_are_compressed_once():
    """RFC 9110 §12.5.3: gzip only when Accept-Encoding allows it; curl --compressed (an independent decoder)
    gets the same bytes as a client that asked for none; small or binary answers are left as they are."""
    page = ("<p>" + "metering gateway " * 200 + "</p>").encode()
    app = make_app()

    @app.get("/asset")
    def asset():
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "max-age=300")
        return page                                    # the same bytes object every time, like the page assets

    @app.get("/picture")
    def picture():
        bottle.response.content_type = "image/png"
        return b"\x89PNG" + bytes(4000)

    async def test(server):
        reader, writer = await connect(server)
        for accept, gzipped in ((b"gzip, deflate, br", True), (b"", False), (b"gzip;q=0", False),
                                (b"*;q=0, gzip", True), (b"br", False), (b"*", True), (b"x-gzip; q=0.5", True)):
            extra = b"Accept-Encoding: " + accept + b"\r\n" if accept else b""
            status, headers, body = await request(reader, writer, get(b"/asset", extra))
            assert status == 200 and (headers.get("content-encoding") == "gzip") == gzipped, accept
            if gzipped:
                assert headers["vary"] == "Accept-Encoding" and len(body) < len(page) // 10
                assert gzip.decompress(body) == page
            else:
                assert body == page
        assert len(server._gzipped) == 1                # compressed once, served from what was kept
        status, headers, body = await request(reader, writer, get(b"/picture", b"Accept-Encoding: gzip\r\n"))
        assert "content-encoding" not in headers and body[:4] == b"\x89PNG"
        status, headers, body = await request(reader, writer, get(b"/echo?short", b"Accept-Encoding: gzip\r\n"))
        assert "content-encoding" not in headers and body == b"get short"
        writer.close()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--compressed", "-D", "-", "http://127.0.0.1:%d/asset" % server.port,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await curl.communicate()
        head, _, decoded = out.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower() and decoded == page
    serve(test, app)
