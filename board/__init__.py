"""Hardware access (SPEC §9): the Raspberry Pi board and the simulated board."""


def make_board(kind, **options):
    """Build the board named on the command line (``sim`` or ``rpi``)."""
    if kind == "sim":
        from board.sim import SimBoard
        return SimBoard(**options)
    if kind == "rpi":
        from board.rpi import RpiBoard
        return RpiBoard(**options)
    raise ValueError("unknown board %r (sim or rpi)" % kind)
