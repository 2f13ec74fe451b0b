"""The pure, MicroPython-safe core: RTU framing and codecs, the registry, the catalogue, meter register windows.

Imports nothing above it (no daemon, protocols, board): it runs under MicroPython."""
