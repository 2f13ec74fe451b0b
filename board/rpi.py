"""The Raspberry Pi / CM4 board: real serial ports, LEDs, button and watchdog.

Serial ports are real devices (``/dev/ttyAMA*`` or USB-RS485 adapters, which
drive the RS485 direction themselves; the kernel's RS485 mode is enabled where
the UART supports it). LEDs are Linux LED-class devices (``/sys/class/leds``)
and the ADDR button a GPIO line read through ``/sys/class/gpio`` when present.
"""

import fcntl
import os
import struct
import time

from board import netconfig
from board.bleradio import BleakRadio
from board.base import Board

REBOOT_REQUEST = "reboot-requested"        # watched by deploy/open-m70-reboot.path

TIOCSRS485 = 0x542F
SER_RS485_ENABLED = 1
SER_RS485_RTS_ON_SEND = 2


class RpiBoard(Board):
    kind = "rpi"

    def __init__(self, ports=None, leds_dir="/sys/class/leds", button_gpio=None,
                 watchdog="/dev/watchdog", network_root="/", interface="eth0", ble_adapter=None, **_ignored):
        Board.__init__(self)
        self.ports = ports or {"digiware": "/dev/ttyAMA0", "rs485": "/dev/ttyAMA1"}
        self.leds_dir = leds_dir
        self.button_gpio = button_gpio
        self._watchdog_path = watchdog
        self._watchdog = None
        self._loop = None
        self._pressed_at = None
        self.network_root = network_root          # "/" on the Pi; a tests' tmp directory
        self.interface = interface
        self._radio = BleakRadio(ble_adapter)     # bleak itself is imported when a scan starts

    def port_path(self, bus):
        return self.ports[bus]

    def open_port(self, bus, baud, parity="N", stop_bits=1):
        port = Board.open_port(self, bus, baud, parity, stop_bits)
        try:  # kernel-driven RS485 direction control where the UART has it
            flags = struct.pack("IIIIIIII", SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND, 0, 0, 0, 0, 0, 0, 0)
            fcntl.ioctl(port.fileno(), TIOCSRS485, flags)
        except OSError:
            pass
        return port

    def ble_scanner(self):
        """The Pi's Bluetooth adapter (hci0 unless ``ble_adapter`` names another) through bleak."""
        return self._radio

    def set_led(self, name, state):
        if self.leds.get(name) == state:
            return                 # sysfs is written on changes only (alarm events call this often)
        Board.set_led(self, name, state)
        base = os.path.join(self.leds_dir, "gateway:" + name)
        if not os.path.isdir(base):
            return
        try:
            if state == "blink":
                with open(os.path.join(base, "trigger"), "w") as f:
                    f.write("timer")
            else:
                with open(os.path.join(base, "trigger"), "w") as f:
                    f.write("none")
                with open(os.path.join(base, "brightness"), "w") as f:
                    f.write("1" if state == "on" else "0")
        except OSError:
            pass

    def start(self, loop):
        self._loop = loop
        if os.path.exists(self._watchdog_path):
            try:
                self._watchdog = os.open(self._watchdog_path, os.O_WRONLY)
            except OSError:
                self._watchdog = None
        if self.button_gpio is not None:
            loop.call_later(0.05, self._poll_button)

    def _poll_button(self):
        path = "/sys/class/gpio/gpio%d/value" % self.button_gpio
        try:
            with open(path) as f:
                pressed = f.read().strip() == "0"   # active low
        except OSError:
            return
        now = time.monotonic()
        if pressed and self._pressed_at is None:
            self._pressed_at = now
        elif not pressed and self._pressed_at is not None:
            self._button_released(now - self._pressed_at)
            self._pressed_at = None
        self._loop.call_later(0.05, self._poll_button)

    def kick_watchdog(self):
        if self._watchdog is not None:
            os.write(self._watchdog, b"k")

    def set_system_time(self, unix_time):
        time.clock_settime(time.CLOCK_REALTIME, unix_time)

    def apply_network(self, config, state_dir):
        """NetworkManager keyfiles under ``network_root`` (board/netconfig.py: why keyfiles, what is written);
        they take effect at the next boot."""
        written = netconfig.write_keyfiles(self.network_root, config, self.interface)
        self._network_written = True
        return written

    def system_reboot_needed(self):
        return getattr(self, "_network_written", False)

    def request_system_reboot(self, state_dir):
        """The request file that deploy/open-m70-reboot.path watches: root's oneshot unit removes it and reboots
        the system (the daemon itself has no right to reboot, and needs none)."""
        netconfig._atomic_write(os.path.join(state_dir, REBOOT_REQUEST), "network settings changed\n")

    def close(self):
        if self._watchdog is not None:
            os.write(self._watchdog, b"V")   # magic close: stop the watchdog cleanly
            os.close(self._watchdog)
            self._watchdog = None
