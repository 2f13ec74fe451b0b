"""HTTP routes of the simulated board: inject faults and events into its meters at run time.

Mounted on the web application by the composition root, and only when the
board is the simulated one (``board.kind == "sim"``); a Pi never serves them.
Documented in README.md (Simulation routes). Board code does not import the
web application: the JSON helpers are handed in.
"""

from board import simfaults
from board.sim import parse_netid


def mount(app, board, web):
    """Add the routes that control ``board``'s simulated meters to the Bottle ``app``.

    ``web`` gives the application's JSON helpers (``body()``, ``reply(data, status)``,
    ``error(status, message)``), so refusals read like every other API answer.
    """
    _body, _json, _error = web.body, web.reply, web.error

    def _sim_call(method, netid, **kwargs):
        """Call a SimBoard method on a meter: 404 for no such meter, 400 for a refused change."""
        try:
            method(parse_netid(netid), **kwargs)
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""))
        except TypeError:               # missing or unknown fields: Python's text would name our internals
            return _error(400, "missing or unknown fields in the request")
        except (ValueError, OverflowError) as exc:
            return _error(400, str(exc))
        return _json({"ok": True})

    @app.get("/api/sim/meters")
    def sim_meters():
        out = []
        for bus, simbus in board.buses.items():
            for m in simbus.meters:
                out.append({"bus": bus, "reference": m.reference, "address": m.address, "netid": "%06X" % m.netid,
                            "silent": m.silent, "extra_delay": m.extra_delay, "crc_error_rate": m.crc_error_rate,
                            "outputs": m.outputs})
        return _json({"meters": out})

    @app.post("/api/sim/meters/<netid>")
    def sim_configure(netid):
        """Faults of a meter: {silent, extra_delay (s), crc_error_rate, address, inputs}; kinds and ranges in
        board/simfaults.py, every one checked before anything changes."""
        body = _body()
        if body is None:
            return _error(400, "expected a JSON object")
        try:
            changes = simfaults.checked(body)
        except ValueError as exc:
            return _error(400, str(exc))
        return _sim_call(board.configure_meter, netid, **changes)

    @app.post("/api/sim/meters/<netid>/alarms")
    def sim_alarms(netid):
        """Configure a meter's alarms: {"alarms": [{slot, load, key, op, threshold, criticality}],
        "logical_inputs": [n, ...]} (either may be left out)."""
        body = _body()
        if body is None or not set(body) <= {"alarms", "logical_inputs"}:
            return _error(400, "expected {\"alarms\": [...], \"logical_inputs\": [...]}")
        alarms, inputs = body.get("alarms"), body.get("logical_inputs")
        if alarms is not None and not (isinstance(alarms, list) and all(isinstance(a, dict) for a in alarms)):
            return _error(400, "alarms must be a list of objects")
        if inputs is not None and not (isinstance(inputs, list) and all(type(n) is int for n in inputs)):
            return _error(400, "logical_inputs must be a list of input numbers")
        return _sim_call(board.configure_alarms, netid, alarms=alarms, logical_inputs=inputs)

    @app.post("/api/sim/meters/<netid>/events")
    def sim_event(netid):
        """A power-quality event or a device alarm happens now: {kind, index, load, key, value,
        duration_ms, start, criticality}."""
        body = _body()
        if body is None or not isinstance(body.get("kind"), str) or type(body.get("index")) is not int:
            return _error(400, "expected {\"kind\": \"power_quality\"|\"device\", \"index\": n, ...}")
        fields = {"kind": str, "index": int, "load": int, "key": str, "value": (int, float),
                  "duration_ms": int, "start": bool, "criticality": str}
        for key, value in body.items():
            if key not in fields or not isinstance(value, fields[key]) or \
                    (isinstance(value, bool) and fields[key] is not bool):
                return _error(400, "cannot use %r = %r" % (key, value))
        return _sim_call(board.inject_event, netid, **body)

    @app.get("/api/sim/network")
    def sim_network():
        """The network configuration the gateway last gave the board (None before any), and how many times."""
        return _json({"network": board.network, "applied": board.network_applied})

    @app.post("/api/sim/button")
    def sim_button():
        body = _body()
        held = body.get("held_s") if body else None
        if not isinstance(held, (int, float)) or isinstance(held, bool) or not 0 <= held <= 60:
            return _error(400, "expected {\"held_s\": seconds}")
        board.press_button(float(held))
        return _json({"ok": True}, 202)
