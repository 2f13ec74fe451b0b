"""Who may do what: the one table the door checks every command against (SPEC §7.1, §8).

A caller is a front end (``protocol``) and, for the web, the logged-in
``profile``. Field protocols have no profiles: their credentials (write
community, SNMPv3 write user, the RTU master on the wire) are checked by the
protocol itself, and what the *policy* allows them is checked here. Every
command also names the policy switch it needs, if any; the door refuses
when the switch is off, whoever asks.
"""

from daemon.security.policy import SERVICE_SWITCHES, service_enabled

PROFILES = ("user", "advanced", "totem", "admin", "cyber")       # SPEC §7.1, least to most
FIELD_PROTOCOLS = ("modbus", "rtu_slave", "snmp", "bacnet")
INTERNAL = ("button", "cli")     # the ADDR push button, the daemon's own command line
# issue 16: the gateway's own clients (scheduled exports, e-mail reports, the SNTP client): front ends that
# call out instead of answering; each owns one system alarm (SPEC §6), which only it raises and clears.
OUTBOUND = ("push", "mail", "sntp", "mqtt")
# issue 18: the MQTT publisher is a data push to the cloud (the policy's cloud/MQTT switch): its failures are
# alarm 6's, "export error", under its own source "mqtt" (SPEC §6 has no other alarm a broker's refusal fits)
ALARM_OWNERS = {"push": 6, "mail": 1, "sntp": 2, "mqtt": 6}

# command: (web profiles allowed, field protocols allowed, policy switch, whom the switch binds).
# "everyone": the web too (SPEC §1: a write to a device needs *Modbus write*, whoever asks);
# "protocols": the field protocols only (an SNMP SET of sysName needs it, the Admin's form does not).
COMMANDS = {
    "write_value": (("admin", "cyber"), FIELD_PROTOCOLS, "policy.modbus_write", "everyone"),
    "passthrough_write": ((), ("modbus", "rtu_slave"), "policy.modbus_write", "everyone"),
    "set_settings": (("admin", "cyber"), ("snmp",), "policy.modbus_write", "protocols"),
    "reset_extremes": (("advanced", "totem", "admin", "cyber"), ("snmp",), "policy.modbus_write", "protocols"),
    "set_time": (("admin", "cyber"), ("bacnet",), "bacnet.time_sync", "protocols"),
    "start_detection": (("admin", "cyber"), (), None, None),
    "synchronise_topology": (("admin", "cyber"), (), None, None),     # a detection that also removes devices
    "acknowledge_alarm": (("advanced", "totem", "admin", "cyber"), (), None, None),
    "reset_counters": (("advanced", "totem", "admin", "cyber"), (), None, None),
    # Diagnosis (SPEC §7.2): the event log as a syslog file is what User already reads; a reboot is Admin's
    "export_events": (PROFILES, (), None, None),
    "reboot": (("admin", "cyber"), (), None, None),
    # the published documents (register map, MIB, EDE): what any integrator's tool reads, no secret in them
    "read_document": (PROFILES, (), None, None),
    # the simulated board's fault injection (present on that board only): it changes what the meters say
    "simulate": (("admin", "cyber"), (), None, None),
    # accounts (SPEC §7.1): the web only; logging in and recovering with the passphrase need no profile yet
    "login": (PROFILES, (), None, None),
    "recover_password": (PROFILES, (), None, None),
    "change_password": (("advanced", "totem", "admin", "cyber"), (), None, None),       # one's own
    "set_password": (("cyber",), (), None, None),                                        # another profile's
    "unlock_totem": (("cyber",), (), None, None),
    "lock_totem": (("cyber",), (), None, None),
    "generate_recovery_passphrase": (("cyber",), (), None, None),
    # issue 14: the accounts page's overview (each profile's state), the customisation pictures (SPEC §7.2)
    "manage_accounts": (("cyber",), (), None, None),
    "customise": (("admin", "cyber"), (), None, None),
    # the Devices pages (SPEC §7.2): sources added, edited, deleted, refreshed; circuits; custom usages
    "edit_topology": (("admin", "cyber"), (), None, None),
    "edit_usages": (("admin", "cyber"), (), None, None),
    # issue 15: the System page (WEBVIEW-M manual §9: Admin and Cyber Security)
    "backup": (("admin", "cyber"), (), None, None),
    "restore": (("admin", "cyber"), (), None, None),
    "reset_topology": (("admin", "cyber"), (), None, None),
    "factory_reset": (("admin", "cyber"), (), None, None),
    "upgrade": (("admin", "cyber"), (), None, None),
    # issue 15: the web certificate and the CA store of the gateway's own TLS clients (Cyber Security's menu)
    "manage_certificates": (("cyber",), (), None, None),
    # issue 15: the firewall's whitelist rules and bans (the Cyber Security menu)
    "manage_firewall": (("cyber",), (), None, None),
    # issue 16: the outbound clients' own bookkeeping (their alarm, their events), the clock and the meters'
    # clocks after an SNTP synchronisation, and the buttons of their settings pages (Admin's menus, SPEC §7.2)
    "report_alarm": ((), OUTBOUND, None, None),
    "sync_clock": ((), ("sntp",), None, None),
    "set_meter_clocks": ((), ("sntp",), None, None),
    "read_series": ((), ("push",), None, None),
    "test_push": (("admin", "cyber"), (), None, None),
    "send_test_email": (("admin", "cyber"), (), None, None),
    "sync_time_now": (("admin", "cyber"), (), None, None),
    # issue 17: the Trends page: every profile reads the stored curves, aggregated and bounded (what the Monitor
    # shows live, over time; the push's "read_series" streams whole files and stays the push's), and keeps its
    # own favourite selections (Admin's are not User's)
    "read_trends": (PROFILES, (), None, None),
    "trend_favourites": (PROFILES, (), None, None),
    # issue 17: the hierarchies (manual §9.7): every profile reads them (Consumption), Admin and Cyber edit them
    "read_consumption": (PROFILES, (), None, None),
    "edit_hierarchies": (("admin", "cyber"), (), None, None),
    # issue 17: the photoview pages (SPEC §7.2, manual §9.8): every profile reads them and their live values,
    # Admin (and Cyber Security, who has Admin's configuration menus) makes them
    "read_photoviews": (PROFILES, (), None, None),
    "edit_photoviews": (("admin", "cyber"), (), None, None),
    # issue 18: generic Modbus devices' data models (WEBVIEW-L §8.2.7: the administrator's "Models" page):
    # every profile reads them and a generic device's own values, Admin and Cyber create, edit, import, delete
    "read_data_models": (PROFILES, (), None, None),
    "edit_data_models": (("admin", "cyber"), (), None, None),
    # issue 18: the Bluetooth page (SPEC §7.2 Protocols > Bluetooth, Admin's menu): what the scan heard nearby
    # (addresses of people's devices too, so not every profile's), and the sensors added or removed as sources
    "read_bluetooth": (("admin", "cyber"), (), None, None),
    "edit_bluetooth_sources": (("admin", "cyber"), (), None, None),
    # issue 18: the MQTT publisher hears of logged-curve points as they are written (it publishes them as history
    # while it runs: mqtt.enabled and policy.cloud); its settings' rules are checked with every settings change
    "watch_curve_points": ((), ("mqtt",), None, None),
    "check_own_settings": ((), ("mqtt",), None, None),
}

# The only settings a field protocol may change (SNMP SET of MIB-II sysContact/sysName/sysLocation).
PROTOCOL_SETTINGS = {"snmp": ("gateway.contact", "gateway.name", "gateway.location")}

# A setting's schema row names the least profile that may change it.
_SETTING_PROFILES = {"admin": ("admin", "cyber"), "cyber": ("cyber",)}

# How policy switches read in a refusal.
POLICY_WORDS = {"policy.modbus_write": "writes to devices are disabled by the security policy",
                "bacnet.time_sync": "time synchronization over BACnet is disabled (bacnet.time_sync)"}


class Caller:
    """Who asks: the front end, the web profile, the client's address (for logs and the audit)."""
    __slots__ = ("protocol", "profile", "peer")

    def __init__(self, protocol, profile=None, peer=None):
        if protocol == "web" and profile not in PROFILES:
            raise ValueError("a web caller needs a profile of %s" % (PROFILES,))
        self.protocol = protocol
        self.profile = profile
        self.peer = peer

    def __repr__(self):
        return "%s%s%s" % (self.protocol, "/" + self.profile if self.profile else "",
                           " from %s" % self.peer if self.peer else "")


def check(settings, caller, command):
    """None when ``caller`` may run ``command`` now, else (reason, message): "rights" or "policy"."""
    profiles, protocols, switch, binds = COMMANDS[command]
    what = command.replace("_", " ")
    if caller.protocol == "web":
        if caller.profile not in profiles:
            return "rights", "the %s profile may not %s" % (caller.profile, what)
    elif caller.protocol in INTERNAL:
        if command != "start_detection":
            return "rights", "%s may not %s" % (caller.protocol, what)
        return None
    elif caller.protocol not in protocols:
        return "rights", "%s may not %s" % (caller.protocol, what)
    elif caller.protocol in SERVICE_SWITCHES and caller.protocol not in OUTBOUND \
            and not service_enabled(settings, caller.protocol):      # an outbound client switched off clears its alarm
        return "policy", "%s is disabled" % caller.protocol
    if switch is not None and (binds == "everyone" or caller.protocol != "web") and not settings.get(switch):
        return "policy", POLICY_WORDS.get(switch, "%s is off" % switch)
    return None


def may_change_setting(caller, name, setting_profile):
    """True when ``caller`` may change setting ``name`` whose schema row names ``setting_profile``."""
    if caller.protocol == "web":
        return caller.profile in _SETTING_PROFILES.get(setting_profile, ())
    return name in PROTOCOL_SETTINGS.get(caller.protocol, ())
