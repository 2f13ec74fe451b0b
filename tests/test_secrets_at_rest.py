"""Secrets at rest (issue 15, SPEC §8): set through the settings API, then searched byte for byte in every file the
gateway writes or hands out — the configuration file, the event log, the syslog export, a configuration and a full
backup — and found in none. The device key is a file of its own (0600); an older file's clear secret is sealed at
the next start; a key that does not open a secret makes it read as unset, said in the event log, never a crash."""

import asyncio
import base64
import json
import os
import stat

from conftest import WebClient, web_login
from system_support import call, make_backup, system_site

from daemon.security.rights import Caller
from daemon.security.secrets import KEY_FILE

# one value per secret, each unlike any other text the gateway holds (SNMPv3 passwords: 8..16 characters)
SECRETS = {"snmp.v3.read_auth_password": "Rd-Auth-7Qz!", "snmp.v3.read_priv_password": "Rd-Priv-8Wx!",
           "snmp.v3.write_auth_password": "Wr-Auth-9Kp!", "snmp.v3.write_priv_password": "Wr-Priv-6Jm!",
           "smtp.password": "Smtp-Secret-5Hv#", "push.password": "Ftp-Secret-4Gt#"}


def files_under(folder):
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield os.path.join(root, name)


def clear_hits(data):
    """Which secrets appear in ``data`` as UTF-8, UTF-16 (either order) or base64 of their UTF-8."""
    hits = set()
    for name, value in SECRETS.items():
        forms = (value.encode(), value.encode("utf-16-le"), value.encode("utf-16-be"),
                 base64.b64encode(value.encode()).rstrip(b"="))
        if any(form in data for form in forms):
            hits.add(name)
    return hits


def test_secrets_set_through_the_api_are_in_no_file_export_or_backup_in_clear(tmp_path):
    state = tmp_path / "state"

    async def body():
        async with system_site(state) as (gw, base):
            admin = await call(web_login, base, "admin")
            status, answer = await call(admin.post, "/api/settings", dict(SECRETS, **{"smtp.auth": True}))
            assert status == 200, answer
            in_memory = dict((name, gw.door(Caller("web", "admin")).setting(name)) for name in SECRETS)
            _, config_backup = await make_backup(admin, "configuration")
            _, full_backup = await make_backup(admin, "full")
            status, syslog, _ = await call(admin.request, "GET", "/api/events/syslog")
            assert status == 200
            await gw.alarms.flush()
            return in_memory, config_backup, full_backup, syslog
    in_memory, config_backup, full_backup, syslog = asyncio.run(body())
    assert in_memory == SECRETS                      # the services get the clear values
    document = json.loads((state / "settings.json").read_text())
    sealed = dict((entry["name"], entry) for entry in document["settings"].values())
    for name in SECRETS:
        assert "enc" in sealed[name] and "value" not in sealed[name], sealed[name]
    searched = {}
    for path in files_under(state):                  # settings.json, events.ring, the tsdb, accounts...
        with open(path, "rb") as handle:
            searched[os.path.relpath(path, state)] = clear_hits(handle.read())
    searched["syslog export"] = clear_hits(syslog)
    searched["configuration backup"] = clear_hits(config_backup)
    searched["full backup"] = clear_hits(full_backup)
    assert {"settings.json", "events.ring", "syslog export", "configuration backup", "full backup"} <= set(searched)
    assert dict((where, hits) for where, hits in searched.items() if hits) == {}
    key = state / KEY_FILE
    assert key.stat().st_size == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert clear_hits(key.read_bytes()) == set()


def test_a_clear_secret_of_an_older_settings_file_is_sealed_at_the_next_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "settings.json").write_text(json.dumps({"settings": {
        "1": {"name": "smtp.password", "value": SECRETS["smtp.password"]},
        "2": {"name": "gateway.name", "value": "Old-File"}}}))

    async def body():
        async with system_site(state, devices=False) as (gw, _base):
            door = gw.door(Caller("web", "admin"))
            return door.setting("smtp.password"), door.setting("gateway.name"), door.events(None)
    value, name, events = asyncio.run(body())
    assert (value, name) == (SECRETS["smtp.password"], "Old-File")
    raw = (state / "settings.json").read_bytes()
    assert clear_hits(raw) == set() and b"Old-File" in raw
    assert [e for e in events if e.get("event") == "secrets-sealed"]


def test_a_device_key_that_does_not_open_a_secret_leaves_it_unset_and_says_so(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"

    async def set_secret():
        async with system_site(first, devices=False) as (_gw, base):
            admin = await call(web_login, base, "admin")
            assert (await call(admin.post, "/api/settings", {"smtp.password": SECRETS["smtp.password"]}))[0] == 200

    async def read_back(state):
        async with system_site(state, devices=False) as (gw, base):
            door = gw.door(Caller("web", "admin"))
            status, _ = await call(WebClient(base).get, "/api/session")     # the gateway serves
            return door.setting("smtp.password"), door.events(None), status
    asyncio.run(set_secret())
    second.mkdir()
    (second / "settings.json").write_bytes((first / "settings.json").read_bytes())     # copied without its key
    moved, moved_events, moved_status = asyncio.run(read_back(second))
    (first / KEY_FILE).write_bytes(b"damaged")                                          # a damaged key
    damaged, damaged_events, damaged_status = asyncio.run(read_back(first))
    for value, events, status in ((moved, moved_events, moved_status), (damaged, damaged_events, damaged_status)):
        assert status == 200 and value == ""        # unset: smtp.password's default
        said = [e for e in events if e.get("event") == "state-file" and "smtp.password" in e.get("detail", "")]
        assert said and all(SECRETS["smtp.password"] not in json.dumps(e) for e in events), events
