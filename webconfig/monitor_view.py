"""What the Monitor page shows of one device or load (WEBVIEW-M manual §8.2.1, SPEC §7.3): one JSON document.

Built from the door's queries only (``device``, ``monitor_row``, ``time``), in memory,
so a long-poll answer (webconfig/monitor_live.py) costs a dictionary walk. ``TABS`` is the one table of what each
tab holds: a tab is sent only when the device's row holds at least one of its keys (no Quality tab on a meter
without THD, no Inputs/outputs tab on a meter without I/O), a group only with the keys present.

Every value goes out as ``[value, quality, age_s]`` with its unit; the page greys stale and lost ones with their
age. tan φ is not a register: it is Q / P of the same phase (``derived``). The phasor (vector) diagram's angles:
the registry has no phase-angle measurement, so the voltages are drawn on the direct sequence (V1 at 0°, V2 at
-120°, V3 at +120°) and each current Ik at Vk - φk, where φk = acos|cos φk| is signed by the power factor's
type (lagging: the current lags; leading: it leads; the PF's sign when the device gives no type) and turned by
180° when Pk < 0 (the load exports). Without a power factor (a device that gives none) φk = atan2(Qk, Pk).
A generic Modbus device (issue 18) adds a *Device data* tab: the values its data model names itself
(``user:<name>``, which no protocol serves), with the model's names and units in ``own``.
"""

import math

from core import datamodel, registry
from daemon import api

# tab id -> groups (group id, keys in the order shown). The catalogue says each as web.monitor.tab.<id> and
# web.monitor.group.<id>; a key is shown by its symbol (SYMBOLS) or, for a word, web.monitor.key.<key>.
TABS = (
    ("summary", (("network", ("v_sys", "u_sys", "freq")),
                 ("load", ("p", "q", "s", "pf", "i_sys", "ea_pos")))),
    ("ui", (("phase_voltages", ("v1", "v2", "v3", "vn", "v_sys")),
            ("line_voltages", ("u12", "u23", "u31", "u_sys")),
            ("currents", ("i1", "i2", "i3", "in", "i_sys")),
            ("average_currents", ("avg_i1", "avg_i2", "avg_i3", "avg_in")),
            ("unbalance", ("i_unb", "i_nb", "i_dir", "i_inv", "i_hom")),
            ("frequency", ("freq",)))),
    ("power", (("active", ("p1", "p2", "p3", "p", "avg_p")),
               ("reactive", ("q1", "q2", "q3", "q", "avg_q")),
               ("apparent", ("s1", "s2", "s3", "s", "avg_s", "s_nom")),
               ("factor", ("pf1", "pf2", "pf3", "pf", "tan_phi1", "tan_phi2", "tan_phi3", "tan_phi")))),
    ("energy", (("energy", ("ea_pos", "ea_neg", "er_pos", "er_neg", "es")),)),
    ("quality", (("voltage_thd", ("thd_v1", "thd_v2", "thd_v3", "thd_u12", "thd_u23", "thd_u31")),
                 ("current_thd", ("thd_i1", "thd_i2", "thd_i3", "thd_in")))),
    ("io", (("inputs", ("in_1", "in_2", "in_3", "in_4", "multifluid")),
            ("outputs", ("out_1", "out_2")))),
)

# a key's symbol (the same in every language); the others are words of the catalogue (web.monitor.key.<key>)
SYMBOLS = {
    "v1": "V1", "v2": "V2", "v3": "V3", "vn": "Vn", "u12": "U12", "u23": "U23", "u31": "U31",
    "i1": "I1", "i2": "I2", "i3": "I3", "in": "In", "p1": "P1", "p2": "P2", "p3": "P3", "p": "ΣP",
    "q1": "Q1", "q2": "Q2", "q3": "Q3", "q": "ΣQ", "s1": "S1", "s2": "S2", "s3": "S3", "s": "ΣS",
    "pf1": "cos φ1", "pf2": "cos φ2", "pf3": "cos φ3", "pf": "Σcos φ",
    "tan_phi1": "tan φ1", "tan_phi2": "tan φ2", "tan_phi3": "tan φ3", "tan_phi": "Σtan φ",
    "thd_v1": "THD V1", "thd_v2": "THD V2", "thd_v3": "THD V3", "thd_u12": "THD U12", "thd_u23": "THD U23",
    "thd_u31": "THD U31", "thd_i1": "THD I1", "thd_i2": "THD I2", "thd_i3": "THD I3", "thd_in": "THD In",
    "avg_i1": "I1", "avg_i2": "I2", "avg_i3": "I3", "avg_in": "In",
    "ea_pos": "Ea+", "ea_neg": "Ea-", "er_pos": "Er+", "er_neg": "Er-", "es": "Es",
}
# tan φ of a phase (or the total): Q / P of the same readings
TAN_PHI = {"tan_phi1": ("p1", "q1"), "tan_phi2": ("p2", "q2"), "tan_phi3": ("p3", "q3"), "tan_phi": ("p", "q")}
PHASES = (1, 2, 3)
VOLTAGE_ANGLES = {1: 0.0, 2: -120.0, 3: 120.0}      # direct sequence, V1 the reference (no angle register)
PF_LEADING, PF_LAGGING = 1, 2                       # the PF type codes of the Socomec tables
OUTPUT_KEYS = ("out_1", "out_2")
NETWORK_PHASES = {"1P+N": 1, "1P+N+1P+N": 1}        # a network not named here shows three phases
OWN_TAB = "device_data"          # a generic device's values named by its data model (issue 18)
OWN_LOAD = datamodel.LOAD        # a generic device's values are its load 1's


def _age(now, reading):
    return None if reading.timestamp is None else round(max(0.0, now - reading.timestamp), 1)


def _row(readings, now):
    """{key: [value, quality, age_s]} of one row, and the derived tan φ (worst quality and oldest age of P, Q)."""
    out = {}
    for key, reading in readings.items():          # inline: this runs for every value of every live update
        value, ts = reading.value, reading.timestamp
        out[key] = [round(value, 4) if value.__class__ is float else value, reading.quality,
                    None if ts is None else round(max(0.0, now - ts), 1)]
    for key, (p_key, q_key) in TAN_PHI.items():
        p, q = readings.get(p_key), readings.get(q_key)
        if p is None or q is None or p.value is None or q.value is None:
            continue
        worst = max((p, q), key=lambda r: _QUALITY_RANK.get(r.quality, 9))
        older = p if (p.timestamp or 0) <= (q.timestamp or 0) else q
        out[key] = [None if p.value == 0 else round(q.value / p.value, 4), worst.quality, _age(now, older)]
    return out


_QUALITY_RANK = {"good": 0, "stale": 1, "comm_lost": 2, "not_supported": 3}


def tabs(values):
    """[{id, groups: [{id, keys}]}] of the tabs the row's ``values`` fill (a tab without a key present is left out)."""
    out = []
    for tab, groups in TABS:
        kept = [{"id": group, "keys": [k for k in keys if k in values]} for group, keys in groups]
        kept = [g for g in kept if g["keys"]]
        if tab == "summary" and not any(k in values for k in ("v1", "i1", "p")):
            kept = []                      # nothing to summarise: an I/O module
        if kept:
            out.append({"id": tab, "groups": kept})
    return out


def phase_angle(values, k):
    """φk in degrees (the current's lag behind its voltage), or None when the row says too little."""
    pf, p = _value(values, "pf%d" % k), _value(values, "p%d" % k)
    if pf is not None and pf != 0:
        kind = _value(values, "pf%d_type" % k)
        lagging = kind == PF_LAGGING if kind in (PF_LEADING, PF_LAGGING) else pf > 0
        phi = math.degrees(math.acos(min(1.0, abs(pf)))) * (1 if lagging else -1)
        return phi + 180.0 if p is not None and p < 0 else phi
    q = _value(values, "q%d" % k)
    if p is None or q is None or (p == 0 and q == 0):
        return None
    return math.degrees(math.atan2(q, p))


def _value(values, key):
    entry = values.get(key)
    return None if entry is None else entry[0]


def _normal(angle):
    """An angle in degrees within (-180, 180]."""
    angle = math.fmod(angle, 360.0)
    if angle > 180.0:
        angle -= 360.0
    elif angle <= -180.0:
        angle += 360.0
    return round(angle, 1)


def phasors(values, network):
    """{voltages: [...], currents: [...], source}: one entry per phase the row measures (name, angle in degrees,
    magnitude, quality); ``source`` says where the current's angles come from ("pf": cos φ and its type)."""
    phases = PHASES[:NETWORK_PHASES.get(network, 3)]
    voltages, currents = [], []
    for k in phases:
        v = values.get("v%d" % k)
        if v is None or v[0] is None:
            continue
        voltages.append({"name": "V%d" % k, "angle": VOLTAGE_ANGLES[k], "magnitude": v[0], "quality": v[1]})
        i, phi = values.get("i%d" % k), phase_angle(values, k)
        if i is not None and i[0] is not None and phi is not None:
            currents.append({"name": "I%d" % k, "angle": _normal(VOLTAGE_ANGLES[k] - phi), "phi": round(phi, 1),
                             "magnitude": i[0], "quality": i[1]})
    if not voltages:
        return None
    return {"voltages": voltages, "currents": currents,
            "source": "pf" if any(_value(values, "pf%d" % k) for k in phases) else "pq"}


def _outputs(values):
    """The outputs this row can switch (writable registry keys the device has), or None."""
    keys = [k for k in OUTPUT_KEYS if k in values and registry.get(k)[registry.WRITABLE]]
    return {"keys": keys} if keys else None


def may_write(door):
    """Whether ``door``'s caller may switch outputs now (rights and the policy): {may, reason, message}."""
    try:
        door.check("write_value")
    except api.Refused as exc:
        return {"may": False, "reason": exc.reason, "message": str(exc)}
    return {"may": True, "reason": None, "message": None}


def units(keys):
    """{key: unit} of the registry (tan φ has none)."""
    return dict((k, registry.get(k)[registry.UNIT] if k not in TAN_PHI else "") for k in keys)


def document(door, address, load, version=0, labels=True):
    """The Monitor's document of ``load`` of the device at ``address`` (load 0: the device's own values, for a
    device without loads), or None when there is no such device or load. ``labels=False`` leaves out the units
    and symbols, which do not change: a long-poll's answer to a page that has them."""
    device = door.device(address)
    if device is None:
        return None
    loads = [{"load": entry["load"], "name": entry.get("name") or "", "network": entry.get("network", "3P+N")}
             for entry in device.loads]
    if load is None:
        load = loads[0]["load"] if loads else 0
    if load and load not in [entry["load"] for entry in loads]:
        return None
    now = door.time()
    readings, state = door.monitor_row(address, load)
    values = _row(readings, now)
    if load and 0 in door.loads(address):      # the device's own values (an I/O block) join its loads' rows
        own, own_state = door.monitor_row(address, 0)
        for key, entry in _row(own, now).items():
            values.setdefault(key, entry)
        state = own_state if own and state == "ok" else state
    network = next((entry["network"] for entry in loads if entry["load"] == load), None)
    ages = [entry[2] for entry in values.values() if entry[2] is not None]
    document = {
        "version": version, "time": now, "address": address, "load": load, "network": network,
        "device": {"address": address, "name": device.name, "reference": device.reference, "area": device.area,
                   "state": state, "age_s": max(ages) if ages else None,
                   "loads": [{"load": e["load"], "name": e["name"]} for e in loads]},
        "values": values, "tabs": tabs(values), "phasors": phasors(values, network), "outputs": _outputs(values),
    }
    if labels:
        document.update(units=units(values), symbols=dict((k, SYMBOLS[k]) for k in values if k in SYMBOLS))
    own = own_values(door, device, load, now)
    if own:
        values.update((key, entry) for key, entry, _ in own)
        document["tabs"].append({"id": OWN_TAB, "groups": [{"id": OWN_TAB, "keys": [key for key, _, _ in own]}]})
        document["own"] = dict((key, label) for key, _, label in own)
    return document


def own_values(door, device, load, now):
    """[(key, [value, quality, age_s], {name, unit})] of a generic device's values named by its data model, not by
    the registry (issue 18): the Device data tab. Sent with every answer (names and units are the model's, which a
    save may change); the registry-named rows are in the other tabs already."""
    if device.model is None or load != OWN_LOAD:
        return []
    out = []
    for value in door.generic_values(device.address)["values"]:
        if not value["standard"]:
            number = value["value"]
            out.append((value["key"], [round(number, 6) if number.__class__ is float else number, value["quality"],
                                       None if value["ts"] is None else round(max(0.0, now - value["ts"]), 1)],
                        {"name": value["name"], "unit": value["unit"]}))
    return out
