"""The gateway's network configuration as the system reads it: checks, and NetworkManager keyfiles.

Raspberry Pi OS Bookworm manages its interfaces with NetworkManager (dhcpcd
and /etc/dhcpcd.conf were dropped in that release), so the Pi board writes
NetworkManager *keyfiles* (nm-settings-keyfile(5)) under
``<root>/etc/NetworkManager/system-connections/``: one ``ethernet``
connection for the wired port and, with VLAN filtering on, one ``vlan``
connection on top of it that carries the address (the port itself then has
no IPv4). Each file is written atomically (temporary file, fsync, rename,
fsync of the directory) with mode 0600: NetworkManager ignores a keyfile
that others can read. The connections' UUIDs are derived from their ids, so
a rewrite updates the same connection. NetworkManager reads the files when it
starts (the next boot), or at ``nmcli connection reload``; nothing is
activated here, so the address the browser talks to does not change under it.

What is *not* system configuration: the HTTP proxy (``network.proxy.*``) is
for the gateway's own outgoing clients (data push); NetworkManager's
``[proxy]`` setting only knows PAC scripts, so it is not written.

The board imports only the core: the configuration arrives as a plain dict
(``config_from_settings`` builds it from the ``network.*`` settings).
"""

import ipaddress
import os
import uuid

KEYFILE_DIR = os.path.join("etc", "NetworkManager", "system-connections")
WIRED_ID, VLAN_ID = "m70-wired", "m70-vlan"
SUFFIX = ".nmconnection"
PRIORITY = 100                   # above the "Wired connection 1" NetworkManager makes by itself (priority 0)
_UUID_SPACE = uuid.UUID("6f1d3c52-4a8e-4d0b-9c61-3b1c2f0a7e70")     # ours: uuid5(space, connection id)

SETTINGS = ("network.dhcp", "network.address", "network.netmask", "network.gateway", "network.dns1",
            "network.dns2", "network.domain", "network.proxy.enabled", "network.proxy.host", "network.proxy.port",
            "network.vlan.enabled", "network.vlan.id")


def config_from_settings(get):
    """The network configuration (a plain dict) from ``get(setting name)``."""
    return {"dhcp": bool(get("network.dhcp")), "address": get("network.address"), "netmask": get("network.netmask"),
            "gateway": get("network.gateway"), "dns": [d for d in (get("network.dns1"), get("network.dns2")) if d],
            "domain": get("network.domain"),
            "proxy": {"enabled": bool(get("network.proxy.enabled")), "host": get("network.proxy.host"),
                      "port": get("network.proxy.port")},
            "vlan": {"enabled": bool(get("network.vlan.enabled")), "id": get("network.vlan.id")}}


PROBLEMS = ("address", "not_host", "gateway_self", "gateway_subnet", "proxy_host")


def problems(config):
    """[(setting name, problem, params)] of what makes ``config`` unusable as a whole (each value is
    already valid on its own: the settings schema checked it). Empty: the configuration may be applied. A problem
    is one of PROBLEMS (the daemon words it from its catalogue)."""
    out = []
    if not config["dhcp"]:
        try:
            net = ipaddress.IPv4Interface("%s/%s" % (config["address"], config["netmask"]))
        except ValueError:
            return [("network.address", "address", {"value": config["address"]})]
        address, network = net.ip, net.network
        if address.is_loopback or address.is_multicast or address.is_unspecified or address.is_reserved \
                or address.is_link_local:
            out.append(("network.address", "not_host", {"value": str(address)}))
        elif network.prefixlen < 31 and address in (network.network_address, network.broadcast_address):
            out.append(("network.address", "not_host", {"value": str(address)}))
        if config["gateway"]:
            gateway = ipaddress.IPv4Address(config["gateway"])
            if gateway == address:
                out.append(("network.gateway", "gateway_self", {"value": str(gateway)}))
            elif gateway not in network:
                out.append(("network.gateway", "gateway_subnet",
                            {"value": str(gateway), "network": str(network)}))
    if config["proxy"]["enabled"] and not config["proxy"]["host"]:
        out.append(("network.proxy.host", "proxy_host", {}))
    return out


def _uuid(connection_id):
    return str(uuid.uuid5(_UUID_SPACE, connection_id))


def _ipv4_section(config):
    lines = ["[ipv4]"]
    if config["dhcp"]:
        lines.append("method=auto")
    else:
        prefix = ipaddress.IPv4Network("0.0.0.0/%s" % config["netmask"]).prefixlen
        lines.append("method=manual")
        lines.append("address1=%s/%d%s" % (config["address"], prefix,
                                            "," + config["gateway"] if config["gateway"] else ""))
    if config["dns"]:
        lines.append("dns=%s;" % ";".join(config["dns"]))
        if config["dhcp"]:
            lines.append("ignore-auto-dns=true")        # the servers given here, not the DHCP server's
    if config["domain"]:
        lines.append("dns-search=%s;" % config["domain"])
    return lines


def keyfiles(config, interface="eth0"):
    """{file name: text} of the keyfiles ``config`` needs; a name with None: a file to remove (the VLAN
    connection once VLAN filtering is off)."""
    wired = ["[connection]", "id=" + WIRED_ID, "uuid=" + _uuid(WIRED_ID), "type=ethernet",
             "interface-name=" + interface, "autoconnect=true", "autoconnect-priority=%d" % PRIORITY, "",
             "[ethernet]", ""]
    vlan = config["vlan"]
    if vlan["enabled"]:
        name = "%s.%d" % (interface, vlan["id"])
        wired += ["[ipv4]", "method=disabled", "", "[ipv6]", "method=ignore", ""]
        tagged = ["[connection]", "id=" + VLAN_ID, "uuid=" + _uuid(VLAN_ID), "type=vlan", "interface-name=" + name,
                  "autoconnect=true", "autoconnect-priority=%d" % PRIORITY, "",
                  "[vlan]", "parent=" + interface, "id=%d" % vlan["id"], ""] + _ipv4_section(config) + \
            ["", "[ipv6]", "method=ignore", ""]
        return {WIRED_ID + SUFFIX: "\n".join(wired), VLAN_ID + SUFFIX: "\n".join(tagged)}
    wired += _ipv4_section(config) + ["", "[ipv6]", "method=ignore", ""]
    return {WIRED_ID + SUFFIX: "\n".join(wired), VLAN_ID + SUFFIX: None}


def _atomic_write(path, text, mode=0o600):
    directory = os.path.dirname(path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)          # whatever the umask: NetworkManager refuses a keyfile others may read
    os.replace(tmp, path)
    _fsync_dir(directory)


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_keyfiles(root, config, interface="eth0"):
    """Write (and remove) the keyfiles of ``config`` under ``root``; the paths written. Blocking: the daemon
    calls it in its executor."""
    directory = os.path.join(root, KEYFILE_DIR)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    written = []
    for name, text in sorted(keyfiles(config, interface).items()):
        path = os.path.join(directory, name)
        if text is None:
            if os.path.exists(path):
                os.remove(path)
                _fsync_dir(directory)
        else:
            _atomic_write(path, text)
            written.append(path)
    return written
