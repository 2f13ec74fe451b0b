"""Build the pysnmp engine from the settings: identity, credentials, access, trap targets.

Runs in the bounded executor (``run_blocking``): building an engine loads
pysnmp's MIB modules and localizes USM keys (password hashing, ~20 ms per
user), which must not stall the daemon's loop. The transport and the
responders are attached afterwards on the loop (agent.py).

Access (VACM): group ``ro`` reads everything and writes nothing (its write
view excludes the whole tree, so a SET answers noAccess); group ``rw`` reads
and writes; both may receive notifications. v1 and v2c communities map to
``ro`` / ``rw`` — the fast path has already checked that the community
belongs to the message's version. SNMPv3 users need their configured
security level (authNoPriv, or authPriv when a privacy protocol is set).

Notifications: each receiver gets its own notification target
(``gw-notify-<n>``), so the agent learns per receiver whether an inform was
acknowledged (pysnmp reports one result per notification target). With
``snmp.trap.mode`` = inform, v2c and v3 receivers get InformRequests that
pysnmp re-sends ``snmp.trap.inform_retries`` times, ``inform_timeout_s``
apart, until acknowledged. v1 has no inform (RFC 3584), and nobody
acknowledges a broadcast: those always get traps (``notify_type``).
"""


from daemon.atomicfile import read_json, write_json
from protocols import udpsock

AUTH = {"MD5": "USM_AUTH_HMAC96_MD5", "SHA": "USM_AUTH_HMAC96_SHA", "SHA224": "USM_AUTH_HMAC128_SHA224",
        "SHA256": "USM_AUTH_HMAC192_SHA256", "SHA384": "USM_AUTH_HMAC256_SHA384",
        "SHA512": "USM_AUTH_HMAC384_SHA512"}
# AES256 is the draft-blumenthal key extension that net-snmp's ``-x AES256`` uses.
PRIV = {"none": "USM_PRIV_NONE", "DES": "USM_PRIV_CBC56_DES", "AES": "USM_PRIV_CFB128_AES",
        "AES256": "USM_PRIV_CFB256_AES_BLUMENTHAL"}

ALL = (1, 3, 6, 1)
TRAP_TAG = "gw-trap"
TRAP_SECURITY_NAME = "gw-trap"

SETTING_KEYS = ("snmp.v1.read_community", "snmp.v1.write_community", "snmp.v2c.read_community",
                "snmp.v2c.write_community", "snmp.v3.read_user", "snmp.v3.read_auth",
                "snmp.v3.read_auth_password", "snmp.v3.read_priv", "snmp.v3.read_priv_password",
                "snmp.v3.write_user", "snmp.v3.write_auth", "snmp.v3.write_auth_password",
                "snmp.v3.write_priv", "snmp.v3.write_priv_password", "snmp.trap.community",
                "snmp.trap.version", "snmp.trap.broadcast", "snmp.trap.host1", "snmp.trap.port1",
                "snmp.trap.host2", "snmp.trap.port2", "snmp.trap.mode", "snmp.trap.inform_timeout_s",
                "snmp.trap.inform_retries")
BROADCAST = udpsock.BROADCAST


def engine_id(netid):
    """RFC 3411 snmpEngineID: enterprise 4555, format 4 (text), stable per gateway."""
    return b"\x80\x00\x11\xcb\x04" + ("openm70-" + str(netid)).encode("ascii")


BOOTS_FILE = "snmp-engine.json"       # in the state dir


def next_boots(path):
    """snmpEngineBoots, kept in ``path`` (the state dir's BOOTS_FILE) and increased at every engine start (RFC 3414)."""
    try:
        boots = int(read_json(path, {})["boots"])
    except (OSError, ValueError, KeyError, TypeError):   # none yet, or unreadable: count from 1 again
        boots = 0
    boots = boots + 1 if 0 <= boots < 2 ** 31 - 2 else 1
    write_json(path, {"boots": boots})
    return boots


def user_level(priv):
    return "authNoPriv" if priv == "none" else "authPriv"


def v3_users(config):
    """{user name: security level (2 authNoPriv, 3 authPriv)} of the configured v3 users; one name used twice
    is one USM entry with the write user's settings (as ``build`` makes it)."""
    levels = {}
    for which in ("read", "write"):
        prefix = "snmp.v3.%s_" % which
        levels[config[prefix + "user"].encode("utf-8")] = 2 if config[prefix + "priv"] == "none" else 3
    return levels


def inform_user(config):
    """The user name (bytes) v3 informs are sent as, or None when no v3 inform is sent."""
    if config["snmp.trap.version"] == "v3" and config["snmp.trap.mode"] == "inform":
        return config["snmp.v3.read_user"].encode("utf-8")
    return None


def notify_type(config, host):
    """'inform' or 'trap' for one receiver: v1 and broadcast always get traps."""
    if config["snmp.trap.mode"] == "inform" and config["snmp.trap.version"] != "v1" and host != BROADCAST:
        return "inform"
    return "trap"


def notification_targets(config, trap_targets):
    """[(notification target name, 'trap' or 'inform')], one per receiver, in ``trap_targets`` order."""
    return [("gw-notify-%d" % i, notify_type(config, host)) for i, (host, _port) in enumerate(trap_targets)]


def build(config, boots_path, netid, trap_targets):
    """A configured pysnmp SnmpEngine (no transport yet).

    ``config``: {setting name: value} for SETTING_KEYS; ``trap_targets``:
    [(ip, port)] already resolved.
    """
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config as pc, engine

    snmp_engine = engine.SnmpEngine()
    builder = snmp_engine.get_mib_builder()
    (id_symbol, boots_symbol) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID", "snmpEngineBoots")
    id_symbol.syntax = id_symbol.syntax.clone(engine_id(netid))
    snmp_engine.snmpEngineID = id_symbol.syntax
    boots_symbol.syntax = boots_symbol.syntax.clone(next_boots(boots_path))

    pc.add_context(snmp_engine, "")
    pc.add_vacm_view(snmp_engine, "all", "included", ALL, "")
    pc.add_vacm_view(snmp_engine, "none", "excluded", ALL, "")

    def access(group, model, level, write):
        pc.add_vacm_access(snmp_engine, group, "", model, level, "exact", "all",
                           "all" if write else "none", "all")

    for model in (1, 2):
        access("ro", model, "noAuthNoPriv", False)
        access("rw", model, "noAuthNoPriv", True)
        access("trap", model, "noAuthNoPriv", False)
    communities = (("v1-read", config["snmp.v1.read_community"], "ro"),
                   ("v1-write", config["snmp.v1.write_community"], "rw"),
                   ("v2c-read", config["snmp.v2c.read_community"], "ro"),
                   ("v2c-write", config["snmp.v2c.write_community"], "rw"))
    for name, community, group in communities:
        pc.add_v1_system(snmp_engine, name, community)
        for model in (1, 2):
            pc.add_vacm_group(snmp_engine, group, model, name)

    users = [("read", "ro"), ("write", "rw")]
    if config["snmp.v3.read_user"] == config["snmp.v3.write_user"]:
        users = [("write", "rw")]      # one name, one USM entry: the broader rights win
    for which, group in users:
        prefix = "snmp.v3.%s_" % which
        name, priv = config[prefix + "user"], config[prefix + "priv"]
        pc.add_v3_user(snmp_engine, name, getattr(pc, AUTH[config[prefix + "auth"]]),
                       config[prefix + "auth_password"], getattr(pc, PRIV[priv]),
                       config[prefix + "priv_password"] if priv != "none" else None)
        pc.add_vacm_group(snmp_engine, group + "-v3-" + which, 3, name)
        access(group + "-v3-" + which, 3, user_level(priv), group == "rw")

    version = config["snmp.trap.version"]
    if version == "v3":
        user = config["snmp.v3.read_user"]
        pc.add_target_parameters(snmp_engine, "gw-trap-params", user, user_level(config["snmp.v3.read_priv"]), 3)
    else:
        pc.add_v1_system(snmp_engine, TRAP_SECURITY_NAME, config["snmp.trap.community"],
                         transportTag=TRAP_TAG)
        for model in (1, 2):
            pc.add_vacm_group(snmp_engine, "trap", model, TRAP_SECURITY_NAME)
        pc.add_target_parameters(snmp_engine, "gw-trap-params", TRAP_SECURITY_NAME, "noAuthNoPriv",
                                 0 if version == "v1" else 1)
    timeout = config["snmp.trap.inform_timeout_s"] * 100          # SNMP-TARGET-MIB: hundredths of a second
    names = notification_targets(config, trap_targets)
    for i, ((host, port), (name, kind)) in enumerate(zip(trap_targets, names)):
        tag = "gw-trap-%d" % i
        # TRAP_TAG: the trap community applies to the receivers' answers (inform acknowledgements).
        pc.add_target_address(snmp_engine, tag, udp.DOMAIN_NAME, (host, port), "gw-trap-params",
                              timeout=timeout, retryCount=config["snmp.trap.inform_retries"],
                              tagList="%s %s" % (TRAP_TAG, tag))
        pc.add_notification_target(snmp_engine, name, "gw-trap-filter", tag, kind)
    return snmp_engine
