"""JSON text of the publisher's scalars, the same characters as the json module's encoder gives (issue 19, target 6).

The JSON payload of every message and the spool record of every sample were made by ``JSONEncoder.encode``: a
dict or list walked by Python code (``iterencode``), ~7 µs each at ~550 messages a second. Their shapes are fixed
(modes.py, spool.py), so they are formatted from these pieces; ``scalar`` answers None for anything it does not
format exactly as json does (a subclass, a string value...), and the caller then uses the encoder.
"""

from json.encoder import encode_basestring_ascii

INFINITY = float("inf")
_TEXTS = {}                     # str -> its JSON string (ensure_ascii): registry keys, qualities, units
_TEXTS_MAX = 4096


def string(text):
    """``text`` as a JSON string, as ``json.dumps(text)`` (ensure_ascii)."""
    out = _TEXTS.get(text)
    if out is None:
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        out = _TEXTS[text] = encode_basestring_ascii(text)
    return out


def scalar(value):
    """A float, int, bool or None as json writes it (allow_nan: NaN, Infinity); None when not one of those."""
    kind = type(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value == INFINITY:
            return "Infinity"
        if value == -INFINITY:
            return "-Infinity"
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None
