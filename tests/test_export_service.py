"""Scheduled exports end to end (issue 16): the real export service on a ManualClock gateway with simulated
meters, delivering to real servers on loopback (pyftpdlib FTP and implicit FTPS, an HTTPS server with Basic
authentication: tests/push_servers.py).

The files the servers received are read back with the parser written from the manuals' annexes
(tests/test_export_formats.py) and compared with what the store holds: every stored point of every exported
series arrives exactly once, across a two-hour outage of the server (alarm 6 raised, then cleared, the files in
the order they were made), and a restart of the gateway after a SIGKILL in the middle of that outage.
"""

import asyncio
import re

import pytest
from conftest import polled, running_gateway, topology_with
from push_servers import PASSWORD, USER, FtpServer, HttpServer, Pki
from test_export_formats import parse_ems, utc

from board.base import ManualClock
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Geometry
from outbound.export.service import ExportService

T = 1_700_002_800.0 - 1_700_002_800 % 3600              # an hour boundary
DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1}
CURVE_PERIODS = {"DC85E9": 10, "D5038A": 10}             # consumption every 10 min
FILE_NAME = re.compile(r"^socomec_GW1_(?P<device>[A-Za-z0-9@.+-]+)_(?P<type>Index|Avg|LoadCurve)_"
                       r"(?P<date>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\.csv$")
TYPE_KIND = {"LoadCurve": "load_curve", "Avg": "history", "Index": "consumption"}


async def step(gw, clock, service, seconds=600):
    """Ten minutes later: the meters polled, the curves downloaded, whatever export is due made."""
    clock.advance(seconds)
    await polled(gw)
    await gw.curves.cycle()
    return await service.cycle()


def ems_points(received):
    """{(kind, Key, date): value} of every data row of the EMS files received, and the duplicates found."""
    points, duplicates = {}, []
    for _folder, name, data in received:
        match = FILE_NAME.match(name)
        assert match, name
        _head, keys, rows = parse_ems(data.decode("utf-8"))
        by_index = dict((k["Index Key"], k["Key"]) for k in keys)
        for index, date, value, _quality in rows:
            point = (TYPE_KIND[match["type"]], by_index[index], date)
            if point in points:
                duplicates.append(point)
            points[point] = value
    return points, duplicates


def stored_points(gw, kinds, start, end):
    """{(kind, netid, load, key, date)} of the store's valid points of ``kinds`` whose start is in [start, end)."""
    out = set()
    store = gw.storage.store
    for name in store.series():
        kind, netid, load, key = name.split("/")
        if kind not in kinds:
            continue
        data = store.read(name, start, end)
        for t, value, _q in data.points():
            if value is not None and start <= t < end:
                out.add((kind, netid, int(load), key, t))
    return out


def driven_export_service(door):
    """The export service without its 5 s schedule loop: the test's steps call ``cycle()`` after each move of the
    ManualClock, so which step made which file is known."""
    return ExportService(door, schedule_loop=False)


driven_export_service.name = "push"


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    """One gateway: exports every 30 min to FTP, a two-hour outage, the server back; then HTTPS and FTPS."""
    base = tmp_path_factory.mktemp("export-service")
    clock = ManualClock(T + 1)
    pki = Pki()
    certfile = pki.issue(base)
    out = {}

    async def scenario():
        async with running_gateway(base / "state", topology_with(DIGIWARE, (), baud=115200), OVERRIDES, clock,
                                   services=[driven_export_service], storage_geometry=Geometry(96, 2000, segments=4),
                                   curve_overrides=CURVE_PERIODS) as gw:
            service = gw.services[0]
            cyber = gw.door(Caller("web", "cyber"))
            push = gw.door(Caller("push"))
            await gw.topology.replace(devices_from_simulation(topology_with(DIGIWARE, ())))
            await polled(gw)
            await gw.curves.cycle()
            ftp = FtpServer(base / "ftp").start()
            port = ftp.port
            await cyber.set_settings({"push.protocol": "ftp", "push.host": "127.0.0.1", "push.port": port,
                                      "push.user": USER, "push.password": PASSWORD, "push.folder": "m70/exports",
                                      "push.format": "ems", "push.server_name": "GW1",
                                      "push.schedule.load_curves.mode": "every",
                                      "push.schedule.load_curves.every_min": 30,
                                      "push.schedule.measurements.mode": "every",
                                      "push.schedule.measurements.every_min": 60,
                                      "push.schedule.energy.mode": "every",
                                      "push.schedule.energy.every_min": 30})
            # EMS with the site still "SITE": alarm 6 at once, and nothing made however long we wait
            out["site_alarm"] = push.alarm_active("site")
            for _ in range(3):
                out.setdefault("made_unnamed", []).extend(await step(gw, clock, service))
            await cyber.set_settings({"push.site_name": "socomec"})
            out["site_alarm_after"] = push.alarm_active("site")
            out["first_export"] = clock.time()
            # an hour with the server up
            for _ in range(6):
                await step(gw, clock, service)
                await service.sender.deliver()
            out["before_outage"] = len(ftp.files)
            # normally nothing: a round that failed on a loaded machine leaves its file first in line
            out["left_before_outage"] = [e.name for e in service.spool.entries()]
            out["error_before"] = str(service.sender.last_error)
            # two hours down: made on schedule, kept in the spool, alarm 6
            ftp.stop()
            exported_before = service.exports
            for _ in range(12):
                await step(gw, clock, service)          # the service's own 5 s loop may make a due file first
                await service.sender.deliver()
            out["spooled_down"] = [e.name for e in service.spool.entries()]
            out["made_down"] = [name for name in out["spooled_down"] if name not in out["left_before_outage"]]
            out["exported_down"] = service.exports - exported_before
            out["alarm_down"] = push.alarm_active("delivery")
            out["status_down"] = service.status()
            # back on the same port: everything, in order, once
            ftp2 = FtpServer(base / "ftp", port=port).start()
            await service.sender.deliver()
            out["after_names"] = ftp2.names()
            out["alarm_after"] = push.alarm_active("delivery")
            out["spool_after"] = service.spool.count()
            out["received"] = ftp.files + ftp2.files
            out["last_export"] = clock.time()
            out["stored"] = stored_points(gw, ("load_curve", "history"), T, clock.time())
            out["last_run"] = dict(service._last_run)
            ftp2.stop()
            # HTTPS with Basic authentication, the server verified against the CA store
            await cyber.add_ca_certificates(pki.pem)
            with HttpServer(certfile=certfile) as web:
                await cyber.set_settings({"push.protocol": "http", "push.secure": True, "push.port": web.port,
                                          "push.folder": "upload"})
                made = []
                for _ in range(3):
                    made.extend(await step(gw, clock, service))
                await service.sender.deliver()
                out["https_made"] = [f.name for f in made]
                out["https_received"] = list(web.files)
                out["https_requests"] = list(web.requests)
            # implicit FTPS, active mode
            with FtpServer(base / "ftps", kind="implicit", certfile=certfile) as ftps:
                await cyber.set_settings({"push.protocol": "ftp", "push.port": ftps.port, "push.tls_mode": "implicit",
                                          "push.ftp_mode": "active", "push.folder": "secure"})
                made = []
                for _ in range(3):
                    made.extend(await step(gw, clock, service))
                await service.sender.deliver()
                out["ftps_made"] = [f.name for f in made]
                out["ftps_received"] = ftps.names()
                out["ftps_commands"] = list(ftps.commands)
                out["test_button"] = await gw.door(Caller("web", "admin")).test_push()
                out["ftps_after_test"] = ftps.names()
    asyncio.run(scenario())
    return out


def test_ems_with_the_site_named_site_raises_alarm_6_and_exports_nothing_until_named(outage):
    assert outage["site_alarm"] is not None and "SITE" in outage["site_alarm"]["detail"]
    assert outage["made_unnamed"] == []
    assert outage["site_alarm_after"] is None


def test_an_outage_of_two_hours_loses_nothing_and_sends_nothing_twice(outage):
    assert outage["before_outage"] > 0
    left = outage["left_before_outage"]
    print("left before the outage:", left, outage["error_before"])
    assert outage["made_down"], "the schedule kept making files while the server was down"
    assert outage["exported_down"] == len(outage["made_down"])           # every file made is kept
    assert outage["spooled_down"] == left + outage["made_down"]          # in the order made
    assert outage["alarm_down"] is not None and outage["status_down"]["spool_files"] == len(left + outage["made_down"])
    assert outage["after_names"] == left + outage["made_down"]           # delivered in order once it is back
    assert outage["alarm_after"] is None and outage["spool_after"] == 0
    names = [name for _f, name, _d in outage["received"]]
    assert len(names) == len(set(names))
    points, duplicates = ems_points(outage["received"])
    assert duplicates == []
    # every stored load-curve and history point since the first export is in exactly one file
    # the points each data type's last export could cover (an hour of slack: the newest point of a series is
    # stored one period after it starts)
    covered = {"load_curve": outage["last_run"]["load_curves"] - 3600,
               "history": outage["last_run"]["measurements"] - 3600}
    expected = set(p for p in outage["stored"] if p[4] < covered[p[0]])
    received = set()
    for (kind, unique_key, date), _value in points.items():
        if kind == "consumption":
            continue
        site, server, _device_id, load, _ana, _data_id = unique_key.split("|")
        assert (site, server) == ("socomec", "GW1")
        received.add((kind, load, utc(date)))
    assert len(expected) > 50
    assert set((k, str(load), t) for k, _n, load, _key, t in expected) <= received


def test_energy_indexes_arrive_every_half_hour_for_each_meter(outage):
    energy = [name for _f, name, _d in outage["received"] if "_Index_" in name]
    assert energy and all(FILE_NAME.match(name)["device"].startswith(("I-35@4", "U-30@11")) for name in energy)


def test_https_post_with_basic_authentication_receives_the_scheduled_files(outage):
    assert outage["https_made"]
    assert [name for _path, name, _data in outage["https_received"]] == outage["https_made"]
    for path, _name, data in outage["https_received"]:
        assert path == "/upload"
        parse_ems(data.decode("utf-8"))
    assert outage["https_requests"] and all(authorized for _p, authorized, _f in outage["https_requests"])


def test_implicit_ftps_in_active_mode_receives_the_scheduled_files(outage):
    assert outage["ftps_made"] and outage["ftps_received"] == outage["ftps_made"]
    assert {"PORT", "EPRT"} & set(outage["ftps_commands"])
    assert not {"PASV", "EPSV"} & set(outage["ftps_commands"])


def test_the_test_button_uploads_a_file_and_shows_the_servers_answer(outage):
    button = outage["test_button"]
    assert button["ok"] is True and button["answer"].startswith("2"), button        # the server's 2xx reply
    assert re.match(r"^socomec_GW1_test_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.txt$", button["file"])
    assert outage["ftps_after_test"] == outage["ftps_received"] + [button["file"]]
