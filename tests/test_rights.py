"""The rights table behind the door (SPEC §7.1 profiles, §8 policy): who may run which command, when."""

import pytest

from daemon.security import rights
from daemon.security.rights import Caller
from daemon.state.settings import DEFAULT, SCHEMA


class Settings(dict):
    """The schema's defaults, changed by the test."""

    def __init__(self, **changes):
        dict.__init__(self, ((row[0], row[DEFAULT]) for row in SCHEMA))
        self.update((k.replace("__", "."), v) for k, v in changes.items())


WRITES_ON = dict(policy__modbus_write=True, snmp__enabled=True, bacnet__enabled=True)


@pytest.mark.parametrize("profile, allowed", [("user", False), ("advanced", False), ("totem", False),
                                              ("admin", True), ("cyber", True)])
def test_web_profiles_write_to_devices_only_as_admin_or_cyber_and_with_the_policy(profile, allowed):
    caller = Caller("web", profile)
    assert (rights.check(Settings(**WRITES_ON), caller, "write_value") is None) == allowed
    # policy off: refused for every profile, with the policy as the reason once the profile may
    refusal = rights.check(Settings(), caller, "write_value")
    assert refusal is not None and refusal[0] == ("policy" if allowed else "rights")


def test_field_protocols_need_their_service_and_the_policy():
    snmp = Caller("snmp")
    assert rights.check(Settings(), snmp, "write_value")[0] == "policy"                       # write switch off
    assert rights.check(Settings(policy__modbus_write=True), snmp, "write_value")[0] == "policy"  # SNMP off
    assert rights.check(Settings(**WRITES_ON), snmp, "write_value") is None
    assert rights.check(Settings(**dict(WRITES_ON, policy__snmp=False)), snmp, "write_value")[0] == "policy"
    assert rights.check(Settings(**WRITES_ON), snmp, "start_detection")[0] == "rights"
    assert rights.check(Settings(**WRITES_ON), Caller("modbus"), "set_settings")[0] == "rights"
    bacnet = Caller("bacnet")
    assert rights.check(Settings(bacnet__enabled=True), bacnet, "set_time")[0] == "policy"   # time_sync default off
    assert rights.check(Settings(bacnet__enabled=True, bacnet__time_sync=True), bacnet, "set_time") is None


def test_the_web_changes_settings_without_the_write_switch_a_protocol_needs():
    assert rights.check(Settings(), Caller("web", "admin"), "set_settings") is None
    assert rights.check(Settings(snmp__enabled=True), Caller("snmp"), "set_settings")[0] == "policy"
    assert rights.may_change_setting(Caller("web", "admin"), "gateway.name", "admin")
    assert not rights.may_change_setting(Caller("web", "admin"), "policy.snmp", "cyber")
    assert rights.may_change_setting(Caller("web", "cyber"), "policy.snmp", "cyber")
    assert rights.may_change_setting(Caller("snmp"), "gateway.location", "admin")
    assert not rights.may_change_setting(Caller("snmp"), "snmp.v1.write_community", "admin")


def test_the_push_button_and_the_command_line_only_start_a_detection():
    for who in ("button", "cli"):
        assert rights.check(Settings(), Caller(who), "start_detection") is None
        assert rights.check(Settings(**WRITES_ON), Caller(who), "write_value")[0] == "rights"


def test_a_web_caller_without_a_profile_is_a_programming_error():
    with pytest.raises(ValueError):
        Caller("web")
    with pytest.raises(ValueError):
        Caller("web", "root")


# SPEC §7.1's table is cumulative: each profile "+" the one above, so Totem has Advanced User's rights
@pytest.mark.parametrize("command", ["reset_counters", "acknowledge_alarm"])
@pytest.mark.parametrize("profile, allowed", [("user", False), ("advanced", True), ("totem", True),
                                              ("admin", True), ("cyber", True)])
def test_resetting_counters_is_advanced_users_right_and_every_profile_above_it(command, profile, allowed):
    assert (rights.check(Settings(), Caller("web", profile), command) is None) == allowed
