"""The house's rules, read off the code (docs/architecture.md, "Rooms").

Each rule is checked on the imports and attribute reads of every module, with
Python's own parser: a change that breaks a rule fails here with the file and
the line, whatever the rest of the suite does.
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSITION_ROOT = ("daemon/__main__.py", "daemon/gateway.py")
DOOR = ("daemon/api.py", "daemon/door/")      # the door and its parts (one mixin per area)
NORTHBOUND = ("protocols.modbus", "protocols.snmp", "protocols.bacnet", "webconfig", "outbound")
# What MicroPython offers of the standard library that the core may use.
MICROPYTHON_STDLIB = ("struct", "sys", "math", "time")
# daemon modules a protocol may use: the door, its service base, the loop's tools, data tables and the
# state's constants (settings schema, alarm names, quality and device states, extreme slots), the version,
# the message catalogue, the policy's service switches (a service asks whether it may run).
PROTOCOL_MAY_USE = ("daemon.api", "daemon.service", "daemon.supervise", "daemon.blocking", "daemon.atomicfile",
                    "daemon.listen", "daemon.limits", "daemon.loopshare", "daemon.version", "daemon.state.settings",
                    "daemon.state.alarms", "daemon.state.cache", "daemon.state.devstate", "daemon.state.extremes",
                    "daemon.security.rights", "daemon.security.policy", "daemon.i18n")


def modules(*rooms):
    """(relative path, dotted module name, parsed tree) of every Python file under ``rooms``."""
    for room in rooms:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, room)):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "node_modules")]
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    rel = os.path.relpath(path, REPO)
                    dotted = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
                    with open(path, encoding="utf-8") as handle:
                        yield rel, dotted, ast.parse(handle.read(), rel)


def imports(tree, dotted):
    """(line, imported module) of every import, relative ones resolved."""
    package = dotted.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else base + "." + alias.name


def under(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(rooms, rule):
    found = []
    for rel, dotted, tree in modules(*rooms):
        for line, module in imports(tree, dotted):
            if rule(rel, dotted, module):
                found.append("%s:%d imports %s" % (rel, line, module))
    return found


def test_the_core_imports_nothing_above_it():
    assert violations(["core"], lambda rel, dotted, module: not under(module, ("core",) + MICROPYTHON_STDLIB)) == []


def test_the_board_knows_only_the_core():
    assert violations(["board"], lambda rel, d, module: under(module, ("daemon", "protocols", "webconfig", "outbound",
                                                                       "tools", "bench"))) == []


def test_only_the_composition_root_imports_a_northbound_front_end():
    def rule(rel, dotted, module):
        if rel in COMPOSITION_ROOT or not under(module, NORTHBOUND):
            return False
        return not under(dotted, (module.split(".")[0] + "." + module.split(".")[1],) if "." in module else ())
    found = violations(["daemon", "core", "board"], rule)
    found += [v for v in violations(["protocols"], lambda rel, dotted, module: under(module, ("webconfig",)))]
    found += violations(["webconfig"], lambda rel, dotted, module: under(module, ("protocols",)))
    found += violations(["protocols", "webconfig"], lambda rel, dotted, module: under(module, ("outbound",)))
    found += violations(["outbound"], lambda rel, dotted, module: under(module, ("protocols", "webconfig")))
    assert found == []


def test_protocols_reach_the_gateway_through_the_door_only():
    def rule(rel, dotted, module):
        if under(module, ("tools", "bench", "daemon.gateway", "daemon.__main__", "daemon.runtime", "daemon.storage")):
            return True
        if under(module, ("daemon",)) and not under(module, PROTOCOL_MAY_USE):
            return True
        own = ".".join(dotted.split(".")[:2])
        return under(module, ("protocols",)) and not under(module, (own, "protocols.udpsock"))
    assert violations(["protocols", "webconfig", "outbound"], rule) == []


@pytest.mark.parametrize("room", ["protocols", "webconfig", "outbound", "board", "daemon/runtime", "daemon/state",
                                  "daemon/storage", "daemon/security", "core"])
def test_no_gateway_attribute_is_read_outside_the_root_and_the_door(room):
    """No ``gateway.x``, ``gw.x`` or ``self.gateway.x`` outside daemon/gateway.py, __main__ and the door."""
    found = []
    for rel, _dotted, tree in modules(room):
        if rel in COMPOSITION_ROOT or rel.startswith(DOOR):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            named = (isinstance(base, ast.Name) and base.id in ("gateway", "gw")) or \
                    (isinstance(base, ast.Attribute) and base.attr in ("gateway", "_gw"))
            if named:
                found.append("%s:%d reads .%s of the gateway" % (rel, node.lineno, node.attr))
    assert found == []


def test_the_version_is_defined_once():
    found = []
    for rel, _dotted, tree in modules("core", "daemon", "protocols", "webconfig", "outbound", "board", "tools"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "VERSION"
                                                    for t in node.targets):
                found.append(rel)
    assert found == ["daemon/version.py"]
