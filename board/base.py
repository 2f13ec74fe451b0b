"""The hardware interface every board implements (SPEC §9)."""

import time

import serial

BUS_NAMES = ("digiware", "rs485")
LED_NAMES = ("status", "alarm", "com", "bluetooth")


class Board:
    """Two serial ports, four LEDs, the ADDR button, a watchdog, clock, network."""

    kind = "abstract"

    def __init__(self):
        self.leds = dict((name, "off") for name in LED_NAMES)
        self._button_handlers = []

    # serial ports ------------------------------------------------------
    def port_path(self, bus):
        """Device path of the serial port behind ``bus`` ("digiware" / "rs485")."""
        raise NotImplementedError

    def serve_upstream(self, bus):
        """The gateway answers as a Modbus RTU slave on ``bus`` (``bus.rs485.mode`` = slave), before it opens
        the port. Nothing to do on real hardware: the upstream master is wired to the port's terminals."""

    def peer_path(self, bus):
        """Device an external RTU master opens to reach the gateway's slave port on ``bus``, where the board
        makes one (the simulated board's null-modem); None when the master is wired to the port."""
        return None

    def open_port(self, bus, baud, parity="N", stop_bits=1):
        """A non-blocking pyserial port for ``bus``; the daemon reads it on its loop."""
        port = serial.Serial(self.port_path(bus), baudrate=baud, parity=parity,
                             stopbits=stop_bits, bytesize=8, timeout=0, write_timeout=0,
                             exclusive=False)
        return port

    # LEDs, button, watchdog -------------------------------------------
    def set_led(self, name, state):
        """state: "off", "on" or "blink"."""
        if name not in self.leds:
            raise ValueError("unknown LED %s" % name)
        self.leds[name] = state

    def on_button(self, handler):
        """``handler(held_seconds)`` runs on the daemon loop when ADDR is released."""
        self._button_handlers.append(handler)

    def _button_released(self, held_seconds):
        for handler in list(self._button_handlers):
            handler(held_seconds)

    def kick_watchdog(self):
        pass

    # Bluetooth Low Energy (issue 18) ----------------------------------
    def ble_scanner(self):
        """The board's BLE radio (an object with ``async start(callback)`` / ``async stop()`` that calls
        ``callback(advertisement)`` on the daemon loop; board/bleradio.py), or None: this board has none."""
        return None

    # clock, network ----------------------------------------------------
    def wall_clock(self, injected=None):
        """The clock the gateway reads (Gateway.clock): the one time of its protocols, events and logs.

        A real board's is the system clock, which ``set_system_time`` sets;
        ``injected`` (a test's ManualClock) stands in for it.
        """
        return injected or SystemClock()

    def set_system_time(self, unix_time):
        """Set the time ``wall_clock()`` reads."""
        raise NotImplementedError

    def apply_network(self, config, state_dir):
        """Make ``config`` (board/netconfig.py: address or DHCP, mask, gateway, DNS, domain, VLAN) the system's
        network configuration from the next boot on; ``state_dir`` is the daemon's state directory. Blocking
        (files): the daemon calls it in its executor. Returns what was written, for the log."""
        raise NotImplementedError

    def system_reboot_needed(self):
        """Whether a restart of the daemon is not enough for what was changed (network settings on a Pi)."""
        return False

    def request_system_reboot(self, state_dir):
        """Ask the system to reboot once the daemon has stopped (a board that can: the Pi). Blocking (a file)."""
        raise NotImplementedError

    def start(self, loop):
        """Called once the daemon loop runs (button polling, etc.)."""

    def close(self):
        pass


class SystemClock:
    """Wall and monotonic time; tests inject a ManualClock instead."""

    def time(self):
        return time.time()

    def monotonic(self):
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told (for simulated months without sleeping)."""

    def __init__(self, start=1_700_000_000.0):
        self.now = float(start)
        self.mono = 0.0

    def time(self):
        return self.now

    def monotonic(self):
        return self.mono

    def advance(self, seconds):
        self.now += seconds
        self.mono += seconds


class OffsetClock:
    """A board's wall clock over a base clock: ``time()`` is the base's plus ``offset``.

    The simulated board has no system clock of its own to set: a time
    synchronization (``set``) moves the offset instead, and whatever reads this
    clock (the gateway, hence every protocol, the event log and the logs)
    follows. ``monotonic()`` is the base's: setting the time moves no interval.
    The simulated meters keep the base clock (their own hardware clocks).
    """

    def __init__(self, base, offset=0.0):
        self.base = base
        self.offset = float(offset)

    def time(self):
        return self.base.time() + self.offset

    def monotonic(self):
        return self.base.monotonic()

    def set(self, unix_time):
        """From now on ``time()`` reads ``unix_time`` (and runs on with the base clock)."""
        self.offset = float(unix_time) - self.base.time()
