"""SNMP agent against net-snmp's own tools: values, walks, credentials, v3 algorithms, SET, switching, MIB.

The gateway runs the demo site on the simulated board; with a frozen clock
(ManualClock) the meters hold still, so what SNMP serves must equal what the
simulated meters hold.
"""

import asyncio
import os
import subprocess

from board.base import ManualClock
from conftest import free_udp_port, udp_port_is_free, wait_for
from core import registry
from protocols.snmp import MIB_FILE, mibdef
from snmp_support import (
    ENTERPRISE, METROLOGY, T0, V3_READ, V3_WRITE, Site, base_mib_dir, mib_path, need, parse, run,
)
from tools import mib as mib_tool

SYSTEM = "1.3.6.1.2.1.1"
BAD_COMMUNITY_NAMES = "1.3.6.1.2.1.11.4.0"
WRONG_DIGESTS = "1.3.6.1.6.3.15.1.1.5.0"
UNSUPPORTED_LEVELS = "1.3.6.1.6.3.15.1.1.1.0"
UNKNOWN_USERS = "1.3.6.1.6.3.15.1.1.3.0"
DECRYPTION_ERRORS = "1.3.6.1.6.3.15.1.1.6.0"
COLUMNS = dict((c.key, c) for c in mibdef.metrology_columns())
EXTREMES = mibdef.extremes_columns()


def oid_of(key, address, load):
    column = COLUMNS[key]
    return "%s.%d.1.%d.%d.%d" % (METROLOGY, column.table, column.service_id, address, load)


scaled = registry.to_gateway_raw        # the integer the tables serve


def test_values_at_the_manuals_oids_equal_the_meters(tmp_path):
    async def body():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            # Negative values, which the demo site never has on its own: load 1 of the I-35 at 4 exports
            # (P < 0, and Q < 0 as it stays lagging), load 2 imports with a leading power factor (PF < 0,
            # Q < 0). The values served below must carry the sign.
            i35 = s.gw.board.find_meter(address=4)
            i35.configure_load(1, export=True)
            i35.configure_load(2, pf=-0.8)
            poller = s.gw.pollers["digiware"]
            await wait_for(lambda: s.gw.cache.get(4, 1, "p").value < 0 and s.gw.cache.get(4, 2, "pf").value < 0)
            cycles = poller.device_cycles[4]
            await wait_for(lambda: poller.device_cycles[4] >= cycles + 2)       # every block read since
            meter5 = s.gw.board.find_meter(address=5)
            manual = METROLOGY + ".20.1.10000.5.1"          # I1 of load 1 of the device at address 5
            for credentials in (s.v1(), s.v2c(), s.v3(*V3_READ)):
                rc, values, text = await s.get(credentials, manual)
                assert rc == 0, text
                assert int(values[manual]) == scaled("i1", meter5.values(1)["i1"]) > 0

            # Values whose register resolution is the SNMP scale equal the meter's exactly.
            wanted = {}
            for address in (4, 5, 14):
                meter = s.gw.board.find_meter(address=address)
                for load in range(1, len(meter.loads) + 1):
                    now = meter.values(load)
                    for key in ("i1", "i2", "i3", "v1", "u12", "p", "q", "pf"):
                        wanted[oid_of(key, address, load)] = scaled(key, now[key])
            u30 = s.gw.board.find_meter(address=11).values(0)
            for key in ("v1", "v2", "v3", "u12"):
                wanted[oid_of(key, 11, 0)] = scaled(key, u30[key])
            io10 = s.gw.board.find_meter(address=15)
            wanted[oid_of("in_1", 15, 0)] = io10.inputs & 1
            wanted[oid_of("out_2", 15, 0)] = (io10.outputs >> 1) & 1
            rc, values, text = await s.get(s.v2c(), *wanted)
            assert rc == 0, text
            assert dict((o, int(values[o])) for o in wanted) == wanted
            signs = dict(((key, load), wanted[oid_of(key, 4, load)] > 0) for key in ("p", "q", "pf") for load in (1, 2))
            assert signs == {("p", 1): False, ("q", 1): False, ("pf", 1): True,
                             ("p", 2): True, ("q", 2): False, ("pf", 2): False}, signs

            # Other resolutions (A-40 powers in 10 W, energies in 10 Wh): the value the gateway read.
            cache = s.gw.cache
            checks = {oid_of(k, a, l): scaled(k, cache.get(a, l, k).value)
                      for a, l, k in ((20, 1, "p"), (20, 1, "ea_pos"), (4, 2, "ea_pos"), (4, 1, "thd_i1"),
                                      (21, 1, "i1"), (4, 1, "avg_i1"))}
            rc, values, text = await s.get(s.v2c(), *checks)
            assert dict((o, int(values[o])) for o in checks) == checks
            assert checks[oid_of("ea_pos", 4, 2)] > 0

            # A measurement the device lacks reads 0 (manual): THD V1 of an I-35, I1 of the IO-10.
            zeros = [oid_of("thd_v1", 4, 1), oid_of("multifluid", 5, 2), oid_of("i1", 15, 0)]
            rc, values, text = await s.get(s.v2c(), *zeros)
            assert [values[o] for o in zeros] == ["0", "0", "0"], text
            supported = "%s.10.30.3.1.7.4.1" % ENTERPRISE
            rc, values, _t = await s.get(s.v2c(), supported)
            assert 0 < int(values[supported]) < len(COLUMNS)

            # Absent device or load: noSuchInstance; unknown column: noSuchObject; v1: noSuchName.
            absent, no_load, no_column = oid_of("i1", 99, 1), oid_of("i1", 5, 7), METROLOGY + ".20.1.99999.5.1"
            rc, values, text = await s.get(s.v2c(), absent, no_load, no_column)
            assert values[absent].startswith("No Such Instance") and values[no_load].startswith("No Such Instance")
            assert values[no_column].startswith("No Such Object"), text
            rc, values, text = await s.get(s.v1(), absent)
            assert rc != 0 and "noSuchName" in text
            rc, values, text = await s.get(s.v1(), oid_of("ea_pos", 4, 1))    # Counter64: invisible to v1
            assert rc != 0 and "noSuchName" in text

            # MIB-II system group and the gateway branch.
            rc, values, text = await s.get(s.v2c(), SYSTEM + ".2.0", SYSTEM + ".5.0", "%s.10.30.2.1.3.15" % ENTERPRISE,
                                           "%s.10.30.2.1.7.5" % ENTERPRISE, "%s.10.30.3.1.5.5.1" % ENTERPRISE)
            assert values[SYSTEM + ".2.0"] == "." + ".".join(map(str, mibdef.SYS_OBJECT_ID))
            assert values[SYSTEM + ".5.0"] == '"M-70"'
            assert values["%s.10.30.2.1.3.15" % ENTERPRISE] == '"IO-10"'
            assert values["%s.10.30.2.1.7.5" % ENTERPRISE] == "1"            # ok
            assert values["%s.10.30.3.1.5.5.1" % ENTERPRISE] == "1"          # good

            # The tree follows the topology: a device removed is gone, its neighbours stay.
            count = "%s.10.30.1.6.0" % ENTERPRISE
            await s.gw.topology.replace([d for d in s.gw.topology.devices if d.address != 21])
            gone, kept = oid_of("i1", 21, 1), oid_of("i1", 20, 1)
            rc, values, text = await s.get(s.v2c(), gone, kept, count)
            assert values[gone].startswith("No Such Instance") and int(values[kept]) > 0
            assert values[count] == "7"
    asyncio.run(body())


def _walk_oids(out):
    """{OID: value} of a walk, without the end-of-MIB marker line net-snmp prints."""
    return parse("\n".join(line for line in out.splitlines() if "No more variables" not in line))


def test_whole_tree_walk_ends_in_order_and_covers_every_device_and_load(tmp_path):
    async def body():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            rc, out, err = await run("snmpbulkwalk", "-On", "-OQ", "-Oe", *s.v2c(), s.target, ".1")
            assert rc == 0 and "not increasing" not in err, err
            walked = _walk_oids(out)
            keys = [tuple(int(x) for x in oid.split(".")) for oid in walked]
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
            rows = [(d.address, load) for d in s.gw.topology.devices for load in d.load_numbers()]
            assert len(rows) == 13
            metrology = [k for k in keys if k[:9] == mibdef.METROLOGY]
            assert len(metrology) == (len(COLUMNS) + 2 * len(EXTREMES)) * len(rows)      # table 23: min and max
            for address, load in rows:
                for column in COLUMNS.values():
                    assert column.oid + (address, load) in set(metrology)
                for column in EXTREMES:
                    assert {column.oid + (address, load, 1), column.oid + (address, load, 2)} <= set(metrology)
                assert mibdef.LOAD_ENTRY + (5, address, load) in set(keys)
            for address in {a for a, _l in rows}:
                assert mibdef.DEVICE_ENTRY + (3, address) in set(keys)
            assert SYSTEM + ".1.0" in walked and "1.3.6.1.6.3.15.1.1.6.0" in walked

            # pysnmp's path (SNMPv3) serves the very same metrology tree.
            rc, out, err = await run("snmpbulkwalk", "-On", "-OQ", "-Oe", *s.v3(*V3_READ), s.target, METROLOGY)
            assert rc == 0, err
            v3 = _walk_oids(out)
            assert v3 == dict((o, v) for o, v in walked.items() if o.startswith(METROLOGY + "."))

            # v1 GETNEXT walk: ends, and Counter64 columns (energies) are skipped (RFC 3584).
            rc, out, err = await run("snmpwalk", "-On", "-OQ", "-Oe", *s.v1(), s.target, ENTERPRISE)
            assert rc == 0, err
            v1 = _walk_oids(out)
            expected = dict((o, v) for o, v in walked.items() if o.startswith(ENTERPRISE + ".")
                            and not o.startswith(METROLOGY + ".22."))
            assert v1.keys() == expected.keys()
    asyncio.run(body())


def test_wrong_credentials_get_no_answer_or_the_usm_report(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            async def counter(oid):
                rc, values, text = await s.get(s.v2c(), oid)
                assert rc == 0, text
                return int(values[oid])

            before = await counter(BAD_COMMUNITY_NAMES)
            for credentials in (["-v2c", "-c", "nope"], ["-v2c", "-c", "public"], ["-v1", "-c", "publicV2"],
                                ["-v1", "-c", "trap"]):
                rc, _v, text = await s.get(credentials + ["-r", "0", "-t", "0.5"], SYSTEM + ".1.0")
                assert rc != 0 and "Timeout" in text, text
            assert await counter(BAD_COMMUNITY_NAMES) == before + 4

            user, auth, auth_pass, priv, priv_pass = V3_READ
            before = await counter(WRONG_DIGESTS)
            rc, _v, text = await s.get(s.v3(user, auth, "Wrong-pass1", priv, priv_pass), SYSTEM + ".1.0")
            assert rc != 0 and "Authentication failure" in text, text
            assert await counter(WRONG_DIGESTS) > before

            before = await counter(UNKNOWN_USERS)
            rc, _v, text = await s.get(s.v3("nobody", auth, auth_pass, priv, priv_pass), SYSTEM + ".1.0")
            assert rc != 0 and "Unknown user name" in text, text
            assert await counter(UNKNOWN_USERS) > before

            before = await counter(DECRYPTION_ERRORS)
            rc, _v, text = await s.get(s.v3(user, auth, auth_pass, priv, "Wrong-priv1"), SYSTEM + ".1.0")
            assert rc != 0 and "Decryption error" in text, text
            assert await counter(DECRYPTION_ERRORS) > before

            # The read user is configured with privacy: authNoPriv is refused (pysnmp's USM reports it).
            before = await counter(UNSUPPORTED_LEVELS)
            rc, _v, text = await s.get(s.v3(user, auth, auth_pass), SYSTEM + ".1.0")
            assert rc != 0 and "Unsupported security level" in text, text
            assert await counter(UNSUPPORTED_LEVELS) > before
    asyncio.run(body())


def test_v3_every_auth_and_privacy_algorithm(tmp_path):
    # (read user, write user) pairs: each auth without privacy, each privacy with some auth.
    pairs = ((("MD5", "none"), ("SHA", "DES")),
             (("SHA224", "none"), ("SHA256", "AES")),
             (("SHA384", "none"), ("SHA512", "AES256")),
             (("SHA", "none"), ("MD5", "AES")),
             (("SHA256", "none"), ("SHA512", "none")))

    async def body():
        async with Site(tmp_path) as s:
            for (read_auth, read_priv), (write_auth, write_priv) in pairs:
                engine = s.service.snmp_engine
                await s.gw.settings.set_many({
                    "snmp.v3.read_auth": read_auth, "snmp.v3.read_priv": read_priv,
                    "snmp.v3.write_auth": write_auth, "snmp.v3.write_priv": write_priv})
                await _wait_reopened(s, engine)
                for user, auth, password, priv in (("control", read_auth, "Control-2024", read_priv),
                                                   ("admin", write_auth, "Admin-2024!", write_priv)):
                    fast = s.service.intake.counters["answered_v3"]
                    rc, values, text = await s.get(s.v3(user, auth, password, priv, password), SYSTEM + ".5.0")
                    assert rc == 0 and values[SYSTEM + ".5.0"] == '"M-70"', (user, auth, priv, text)
                    # the v3 fast path answered it (net-snmp checked our digest and cipher); DES is pysnmp's
                    assert s.service.intake.counters["answered_v3"] - fast == (0 if priv == "DES" else 1), priv
                    rc, _v, text = await s.get(s.v3(user, auth, "Wrong-pass1", priv, password), SYSTEM + ".5.0")
                    assert rc != 0 and "Authentication failure" in text, (user, auth, priv, text)
    asyncio.run(body())


async def _wait_reopened(site, old_engine):
    await wait_for(lambda: site.service.running and site.service.snmp_engine is not None
                   and site.service.snmp_engine is not old_engine)


def test_set_needs_write_credentials_and_the_policy_and_reaches_the_meter(tmp_path):
    out_1 = oid_of("out_1", 15, 0)

    async def body():
        async with Site(tmp_path) as s:
            io10 = s.gw.board.find_meter(address=15)

            # Policy off (the default): refused with noAccess, the meter unchanged.
            for credentials in (s.v2c("privateV2"), s.v3(*V3_WRITE)):
                rc, out, err = await s.set(credentials, out_1, "u", "1")
                assert rc != 0 and "noAccess" in out + err, out + err
            assert io10.outputs == 0
            await s.gw.settings.set_many({"policy.modbus_write": True})

            # Read credentials: noAccess (v2c, v3) / noSuchName (v1); meter unchanged.
            for credentials, reason in ((s.v2c(), "noAccess"), (s.v3(*V3_READ), "noAccess"),
                                        (s.v1(), "noSuchName")):
                rc, out, err = await s.set(credentials, out_1, "u", "1")
                assert rc != 0 and reason in out + err, out + err
            assert io10.outputs == 0

            # Write credentials: the IO-10 output changes in the meter.
            rc, out, err = await s.set(s.v2c("privateV2"), out_1, "u", "1")
            assert rc == 0, out + err
            assert io10.outputs & 1 == 1
            rc, values, text = await s.get(s.v2c(), out_1)
            assert values[out_1] == "1"
            rc, out, err = await s.set(s.v3(*V3_WRITE), out_1, "i", "0")
            assert rc == 0 and io10.outputs & 1 == 0, out + err
            rc, out, err = await s.set(s.v1("private"), oid_of("out_2", 15, 0), "u", "1")
            assert rc == 0 and io10.outputs == 2, out + err

            # Refusals by object and value; nothing changes.
            refusals = (((out_1, "u", "5"), "wrongValue"),
                        ((out_1, "s", "on"), "wrongType"),
                        ((oid_of("i1", 5, 1), "u", "1"), "notWritable"),
                        ((SYSTEM + ".1.0", "s", "x"), "notWritable"),
                        ((oid_of("out_1", 99, 0), "u", "1"), "noCreation"),
                        ((SYSTEM + ".5.0", "s", "x" * 40), "wrongLength"))
            for assignment, reason in refusals:
                rc, out, err = await s.set(s.v2c("privateV2"), *assignment)
                assert rc != 0 and reason in out + err, (assignment, out + err)
            # One bad varbind refuses the whole request (here the second one).
            rc, out, err = await s.set(s.v2c("privateV2"), out_1, "u", "1", SYSTEM + ".5.0", "s", "x" * 40)
            assert rc != 0 and "wrongLength" in out + err and "Failed object: " + "." + SYSTEM + ".5.0" in out + err
            assert io10.outputs == 2 and s.gw.settings.get("gateway.name") == "M-70"

            # MIB-II sysName / sysLocation / sysContact are the gateway's settings.
            rc, out, err = await s.set(s.v2c("privateV2"), SYSTEM + ".5.0", "s", "Board B2",
                                         SYSTEM + ".6.0", "s", "Switchroom 3", SYSTEM + ".4.0", "s", "ops@site")
            assert rc == 0, out + err
            assert (s.gw.settings.get("gateway.name"), s.gw.settings.get("gateway.location"),
                    s.gw.settings.get("gateway.contact")) == ("Board B2", "Switchroom 3", "ops@site")
            rc, values, text = await s.get(s.v1(), SYSTEM + ".5.0")
            assert values[SYSTEM + ".5.0"] == '"Board B2"'
            assert s.service.status()["set"]["noError"] == 4
    asyncio.run(body())


def test_switching_off_closes_the_port_at_once(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            for change in ({"snmp.enabled": False}, {"policy.snmp": False}):
                port = s.port                               # bound to 0: each opening gets its own
                assert not udp_port_is_free(port)
                await s.gw.settings.set_many(change)
                await wait_for(lambda: not s.service.running and udp_port_is_free(port))
                assert s.port is None and s.service.status()["port"] is None
                rc, out, err = await run("snmpget", "-On", *s.v2c(), "-r", "0", "-t", "0.5",
                                         "127.0.0.1:%d" % port, SYSTEM + ".5.0")
                assert rc != 0 and "Timeout" in out + err
                await s.gw.settings.set_many({"snmp.enabled": True, "policy.snmp": True})
                await wait_for(lambda: s.service.running)
                rc, values, text = await s.get(s.v2c(), SYSTEM + ".5.0")
                assert rc == 0 and values[SYSTEM + ".5.0"] == '"M-70"', text

            # A new port: answers there, the old one is closed. The port number is the input under test
            # here, so it is picked free beforehand (the one place a test names a port for our server).
            port, new_port = s.port, free_udp_port()
            engine = s.service.snmp_engine
            await s.gw.settings.set_many({"snmp.port": new_port})
            await _wait_reopened(s, engine)
            assert udp_port_is_free(port) and s.service.status()["port"] == new_port == s.port
            rc, values, text = await s.get(s.v2c(), SYSTEM + ".5.0")
            assert rc == 0, text
    asyncio.run(body())


def test_mib_is_generated_from_the_registry_and_loads_in_net_snmp(tmp_path):
    with open(MIB_FILE, encoding="ascii") as handle:
        assert handle.read() == mib_tool.generate(), "regenerate: python -m tools.mib > " + MIB_FILE
    path = mib_path()
    # libsmi's strictest level: nothing to say about our module (the base modules' own copies may get remarks).
    need("smilint")
    lint = subprocess.run(["smilint", "-l", "9", MIB_FILE], env=dict(os.environ, SMIPATH=base_mib_dir()),
                          capture_output=True, text=True, timeout=120)
    ours = [line for line in (lint.stdout + lint.stderr).splitlines() if not line.startswith(base_mib_dir())]
    assert lint.returncode == 0 and ours == [], ours

    async def body():
        rc, out, err = await run("snmptranslate", "-m", mibdef.MIB_NAME, "-M", path, "-IR", "-On", "instCurrentI1")
        assert rc == 0 and err == "" and out.strip() == "." + METROLOGY + ".20.1.10000", err
        rc, out, err = await run("snmptranslate", "-m", mibdef.MIB_NAME, "-M", path, "-IR", "-On",
                                 "minmaxCurrentI1.5.1.maximum")
        assert rc == 0 and err == "" and out.strip() == "." + METROLOGY + ".23.1.10000.5.1.2", err
        for column in mibdef.metrology_columns():
            assert column.descriptor in open(MIB_FILE).read()
        names = ("gwAlarmRaised", "gwLoadQuality", "ioDigitalOutput1", "energyActiveEnergyImportedEaPos", "gwM70")
        rc, out, err = await run("snmptranslate", "-m", mibdef.MIB_NAME, "-M", path, "-On", *[
            "%s::%s" % (mibdef.MIB_NAME, n) for n in names])
        assert rc == 0 and err == "", err
        assert out.split() == [".1.3.6.1.4.1.4555.10.30.0.1", ".1.3.6.1.4.1.4555.10.30.3.1.5",
                               "." + METROLOGY + ".26.1.14101", "." + METROLOGY + ".22.1.13000",
                               ".1.3.6.1.4.1.4555.10.30.10.70"]
        # The form of the docs: added to net-snmp's default MIBs and path.
        rc, out, err = await run("snmptranslate", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + path, "-IR", "-On",
                                 "gwDevStatus")
        assert rc == 0 and out.strip() == ".1.3.6.1.4.1.4555.10.30.2.1.7"
        assert "SOCOMEC" not in err, err

        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            rc, out, err = await run("snmpwalk", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + path, *s.v2c(), s.target,
                                     "%s::gwDeviceTable" % mibdef.MIB_NAME)
            assert rc == 0 and "SOCOMEC" not in err, err
            assert '%s::gwDevReference.15 = STRING: IO-10' % mibdef.MIB_NAME in out, out
            assert "%s::gwDevStatus.5 = INTEGER: ok(1)" % mibdef.MIB_NAME in out
            i1 = s.gw.board.find_meter(address=5).values(1)["i1"]
            rc, out, err = await run("snmpget", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + path, *s.v2c(), s.target,
                                     "%s::instCurrentI1.5.1" % mibdef.MIB_NAME)
            assert out.strip() == "%s::instCurrentI1.5.1 = Gauge32: %.3f A" % (mibdef.MIB_NAME, i1), out + err
    asyncio.run(body())


def test_mib_descriptors_are_unique_and_follow_the_registry():
    text = mib_tool.generate()
    columns = mibdef.metrology_columns()
    assert len({c.descriptor for c in columns}) == len(columns) == len(registry.MEASUREMENTS)
    for column in columns:
        assert column.table == registry.snmp_table(column.key)
        assert "::= { %sEntry %d }" % (mibdef.METROLOGY_TABLES[column.table][1], column.service_id) in text
    assert COLUMNS["out_1"].writable and "read-write" in text
    assert os.path.basename(MIB_FILE) == mibdef.MIB_NAME + ".txt"
