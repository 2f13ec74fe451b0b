"""Writes to devices and pass-through requests: target → bus → meter.

Only the door (``daemon/api.py``) calls this module, with the runtime's
``Parts`` (topology, engines, cache), after it checked the
caller's rights and the security policy. ``write_value`` checks the target
and the value, sends the write with pass-through priority, and refreshes the
cache with the value the device accepted. Refusals are ``WriteRefused`` with
a reason the door passes on and each protocol maps to its own error
(exception 01, noAccess, write-access-denied...).
"""

import logging

from core import catalogue, modbus_rtu as rtu
from daemon.runtime.bus import PASSTHROUGH, BusTimeout

log = logging.getLogger("parts.control")

# reasons
POLICY = "policy"                # writes are off in the security policy
NO_DEVICE = "no_device"          # no such device in the topology
NOT_WRITABLE = "not_writable"    # the measurement cannot be written
BAD_VALUE = "bad_value"          # out of range for the target
NO_ANSWER = "no_answer"          # the device did not answer
DEVICE_REFUSED = "device_refused"  # the device answered with an exception


class WriteRefused(Exception):
    def __init__(self, reason, message):
        Exception.__init__(self, message)
        self.reason = reason


def _device(parts, address):
    """The topology device at ``address`` on a bus this gateway masters, or WriteRefused."""
    device = parts.topology.device(address)
    if device is None or device.bus not in parts.engines:
        raise WriteRefused(NO_DEVICE, "no device at address %d" % address)
    return device


def check_write(parts, address, load, key, value):
    """Raise WriteRefused unless this write can be sent; returns (device, register, words)."""
    device = _device(parts, address)
    target = catalogue.write_target(device.reference, load, key)
    if target is None:
        raise WriteRefused(NOT_WRITABLE, "%s of load %d of %s is not writable" % (key, load, device.reference))
    if key.startswith("out_") and value not in (0, 1):
        raise WriteRefused(BAD_VALUE, "an output is 0 or 1")
    register, kind, multiplier = target
    try:
        words = catalogue.encode(kind, value, multiplier)
    except ValueError as exc:
        raise WriteRefused(BAD_VALUE, str(exc)) from None
    return device, register, words


async def write_value(parts, address, load, key, value, origin="?"):
    """Write one registry value to a device; returns the value now in the cache."""
    device, register, words = check_write(parts, address, load, key, value)
    engine = parts.engines[device.bus]
    try:
        if len(words) == 1:
            await engine.request(address, rtu.write_single_request(rtu.WRITE_SINGLE_REGISTER, register, words[0]),
                                 PASSTHROUGH)
        else:
            await engine.request(address, rtu.write_registers_request(register, words), PASSTHROUGH)
    except BusTimeout:
        raise WriteRefused(NO_ANSWER, "device %d did not answer" % address) from None
    except rtu.ModbusException as exc:
        raise WriteRefused(DEVICE_REFUSED, "device %d refused the write (exception %d)" % (address, exc.code)) \
            from None
    log.info("%s wrote %s=%r to %s@%d load %d", origin, key, value, device.reference, address, load)
    parts.cache.update(address, load, {key: value})
    return value


async def passthrough(parts, address, pdu):
    """Forward a raw request PDU to a device (Modbus TCP gateway); response PDU.

    Checks are the device's own. Raises WriteRefused(NO_DEVICE), BusTimeout,
    BusBusy, ModbusException.
    """
    device = _device(parts, address)
    answer = await parts.engines[device.bus].request(address, pdu, PASSTHROUGH)
    parts.static.learn(device, pdu, answer)     # identification words: later reads need no frame
    return answer


def static_registers(parts, address, function, start, count):
    """Words of a meter's fixed registers (identification) an earlier pass-through read brought, or None."""
    device = parts.topology.device(address)
    if device is None or device.bus not in parts.engines or parts.cache.comm_lost(address):
        return None               # a silent meter may have been swapped: ask it again
    return parts.static.read(device, function, start, count)
