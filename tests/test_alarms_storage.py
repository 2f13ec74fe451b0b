"""System alarms across restarts, the fixed-size event log, settings and topology files."""

import asyncio
import json
import os
import shutil

import pytest

from board.base import ManualClock
from daemon.state.alarms import Alarms
from daemon.state.ringlog import SLOT, RingLog
from daemon.state.settings import SettingError, Settings, parse_assignment


def test_event_log_never_grows_and_keeps_the_newest(tmp_path):
    path = str(tmp_path / "events.ring")
    log = RingLog(path, capacity=100)
    size = os.path.getsize(path)
    assert size == 100 * SLOT
    for i in range(250):
        log.append({"n": i})
    assert os.path.getsize(path) == size
    again = RingLog(path, capacity=100)
    assert [r["n"] for r in again.records()] == list(range(150, 250))
    assert again.next_seq == 251


def test_a_torn_record_is_ignored_not_fatal(tmp_path):
    path = str(tmp_path / "events.ring")
    log = RingLog(path, capacity=10)
    for i in range(5):
        log.append({"n": i})
    with open(path, "r+b") as f:           # a power cut in the middle of record 4
        f.seek(3 * SLOT + 20)
        f.write(b"\xff\xff\xff")
    again = RingLog(path, capacity=10)
    assert [r["n"] for r in again.records()] == [0, 1, 2, 4]
    assert again.corrupt_slots == 1


def test_alarm_state_survives_restarts_without_duplicates_or_losses(tmp_path):
    path = str(tmp_path / "events.ring")
    clock = ManualClock()
    alarms = Alarms(clock, path)
    alarms.set(3, "digiware:11", True, "silent")
    alarms.set(3, "digiware:11", True, "silent")       # same state: nothing new
    alarms.set(4, "digiware:4", True, "conflict")
    assert [(e["alarm"], e["event"]) for e in alarms.events()] == [(3, "raised"), (4, "raised")]
    assert alarms.bitfield() == 0b1100

    restarted = Alarms(clock, path)                      # power cut and restart
    assert set(restarted.active) == {(3, "digiware:11"), (4, "digiware:4")}
    restarted.set(3, "digiware:11", True)                # still silent: confirmed, no new event
    restarted.reconcile()                                # the conflict was not seen again: cleared
    events = [(e["alarm"], e["event"]) for e in restarted.events()]
    assert events == [(3, "raised"), (4, "raised"), (4, "cleared")]
    assert set(restarted.active) == {(3, "digiware:11")}

    third = Alarms(clock, path)
    assert set(third.active) == {(3, "digiware:11")}
    third.set(3, "digiware:11", False)
    assert [(e["alarm"], e["event"]) for e in third.events()][-1] == (3, "cleared")
    with pytest.raises(ValueError):
        third.set(9, "x", True)


def test_settings_are_checked_and_a_bad_value_changes_nothing(tmp_path):
    path = str(tmp_path / "settings.json")
    async def scenario():
        settings = Settings(path)
        await settings.set_many({"bus.digiware.baud": 19200, "snmp.enabled": True})
        with pytest.raises(SettingError):
            await settings.set_many({"bus.digiware.baud": 9600, "bus.rs485.baud": 1})
        assert Settings(path).get("bus.digiware.baud") == 19200
        assert Settings(path).get("bus.rs485.baud") == 38400
        assert Settings(path).get("snmp.enabled") is True
    asyncio.run(scenario())
    assert not os.path.exists(path + ".tmp")
    for bad in ("nokey", "no.such.setting=1", "bus.digiware.baud=fast", "snmp.enabled=maybe",
                "bus.digiware.parity=X", "gateway.name=" + "x" * 40, "gateway.name=a\x01b"):
        with pytest.raises(SettingError):
            parse_assignment(bad)
    assert parse_assignment("snmp.enabled=true") == ("snmp.enabled", True)
    assert parse_assignment("bacnet.port=47809") == ("bacnet.port", 47809)


def test_a_hand_broken_settings_value_falls_back_to_its_default(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"settings": {"1": {"name": "bus.digiware.baud", "value": "fast"},
                                             "2": {"name": "snmp.enabled", "value": True}}}))
    settings = Settings(str(path))
    assert settings.get("bus.digiware.baud") == 38400 and settings.get("snmp.enabled") is True


def test_secret_settings_are_stored_encrypted_and_bound_to_their_name(tmp_path):
    from daemon.security.secrets import SecretBox
    box = SecretBox.for_state_dir(str(tmp_path))
    assert oct(os.stat(tmp_path / "device.key").st_mode & 0o777) == "0o600"
    path = str(tmp_path / "settings.json")
    async def scenario():
        settings = Settings(path, secret_box=box)
        await settings.set_many({"snmp.v2c.read_community": "s3cretCommunity",
                                 "snmp.v3.read_auth_password": "Pass-word-99"})
    asyncio.run(scenario())
    raw = open(path).read()
    assert "s3cretCommunity" not in raw and "Pass-word-99" not in raw
    again = Settings(path, secret_box=SecretBox.for_state_dir(str(tmp_path)))
    assert again.get("snmp.v2c.read_community") == "s3cretCommunity"
    # a ciphertext moved to another secret setting does not decrypt: default kept
    doc = json.loads(raw)
    entries = list(doc["settings"].values())
    entries[0]["enc"], entries[1]["enc"] = entries[1]["enc"], entries[0]["enc"]
    with open(path, "w") as f:
        json.dump(doc, f)
    swapped = Settings(path, secret_box=box)
    assert swapped.get("snmp.v2c.read_community") == "publicV2"
    assert Settings(path).get("snmp.v3.read_auth_password") == "Control-2024"   # no key: defaults


def _stating(records, source):
    """The event-log records that say the alarm of ``source`` is active."""
    return [r for r in records if r.get("source") == source and r.get("event") in ("raised", "still_active")]


def test_an_alarm_outlives_the_ring_that_recorded_it(tmp_path):
    """Raised, then the ring wraps 2.5 times: a restart (even after a write torn by a power cut) restores it,
    once, with its start time and acknowledgement; a cleared alarm is never brought back."""
    path = str(tmp_path / "events.ring")
    t0 = 1_700_000_000.0
    clock = ManualClock(t0)
    alarms = Alarms(clock, path, capacity=100)
    alarms.set(3, "digiware:5", True, "silent")
    alarms.acknowledge(3, "digiware:5", "admin")
    alarms.set(4, "digiware:7", True, "conflict")
    alarms.set(4, "digiware:7", False)
    torn = []                                               # the alarms a restart finds after each torn write
    cut = str(tmp_path / "cut.ring")
    append = alarms.log.append

    def append_cut_short(record):
        """Before each write to the ring: a copy where a power cut tore the slot this write goes to."""
        shutil.copyfile(path, cut)
        with open(cut, "r+b") as f:
            f.seek((alarms.log.next_seq - 1) % 100 * SLOT + 20)
            f.write(b"\xff\xff\xff")
        restored = Alarms(clock, cut, capacity=100)
        torn.append((set(restored.active), restored.active.get((3, "digiware:5"), {}).get("since")))
        return append(record)
    alarms.log.append = append_cut_short
    for n in range(250):                                    # 2.5 x the ring's 100 records
        clock.advance(1)
        alarms.record_event({"event": "note", "n": n})
    assert len(torn) == 250 + 2                             # the notes and the two restatements
    assert [n for n, found in enumerate(torn) if found != ({(3, "digiware:5")}, t0)] == []
    assert alarms.restated == 2                             # once per wrap of the ring, not per write
    records = RingLog(path, capacity=100).records()
    assert len(records) == 100 and not any(r.get("event") == "raised" for r in records)   # "raised" overwritten
    assert [r["since"] for r in _stating(records, "digiware:5")] == [t0]

    restarted = Alarms(clock, path, capacity=100)
    assert restarted.active == {(3, "digiware:5"): {"since": t0, "detail": "silent", "confirmed": False,
                                                    "acknowledged": {"by": "admin", "ts": t0}}}
    before = len(restarted.events())
    restarted.set(3, "digiware:5", True, "silent")          # still silent: confirmed, nothing written
    restarted.reconcile()
    assert len(restarted.events()) == before and set(restarted.active) == {(3, "digiware:5")}
    assert [a["alarm"] for a in restarted.active_list()] == [3]

    restarted.set(3, "digiware:5", False)                   # ends: nothing keeps it any more
    for n in range(150):
        restarted.record_event({"event": "note", "n": n})
    assert restarted.restated == 0
    assert Alarms(clock, path, capacity=100).active == {}


def test_the_event_log_writer_on_the_loop_keeps_active_alarms_too(tmp_path):
    path = str(tmp_path / "events.ring")
    clock = ManualClock(1_700_000_000.0)

    async def scenario():
        alarms = Alarms(clock, path, capacity=100)
        alarms.set(3, "rs485:21", True, "silent")
        for n in range(120):
            alarms.record_event({"event": "note", "n": n})
            if n == 60:
                alarms.set(7, "client 10.0.0.9", True, "banned")     # raised and ended while the ring wraps
            if n == 80:
                alarms.set(7, "client 10.0.0.9", False)
        await alarms.flush()
        return alarms
    alarms = asyncio.run(scenario())
    assert alarms.restated == 1
    restarted = Alarms(clock, path, capacity=100)
    assert set(restarted.active) == {(3, "rs485:21")}
    records = restarted.events()
    assert len(_stating(records, "rs485:21")) == 1
    assert [r["event"] for r in records if r.get("alarm") == 7] == ["raised", "cleared"]


def test_a_record_written_but_not_yet_taken_off_the_queue_is_listed_once(tmp_path):
    """The executor appends the head of the queue to the ring; the loop takes it off the queue only when the
    write's future comes back. A reader in between saw it twice (CI: two 'cleared' events for one clear)."""
    clock = ManualClock()
    alarms = Alarms(clock, str(tmp_path / "events.ring"))
    record = {"ts": clock.time(), "event": "cleared", "alarm": 1, "name": "e-mail transmission error",
              "source": "mail", "criticality": "non-critical", "detail": "", "category": "system"}
    alarms._pending.append(record)          # as _append queues it while the loop runs
    alarms._write(record)                    # the executor's write, done; the loop has not popped it yet
    listed = [e for e in alarms.events() if e.get("event") == "cleared" and e.get("alarm") == 1]
    assert len(listed) == 1 and not listed[0].get("pending")
    alarms._pending.pop(0)                   # the loop takes it off the queue: still once
    assert len([e for e in alarms.events() if e.get("event") == "cleared"]) == 1
