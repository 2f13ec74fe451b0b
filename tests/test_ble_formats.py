"""BLE advertisement formats (core/ble_formats.py) against the examples their own documentation publishes.

Independent sources, quoted as published:
- BTHome v2, bthome.io/format: the example advertisement ``020106 0B094449592D73656E736F72 0A16D2FC4002C40903BF13``
  (25.00 °C, 50.55 %) and the "Example" / "Result" columns of its object table.
- pvvx custom format and atc1441 format: the README of github.com/pvvx/ATC_MiThermometer (field layout) and the
  frames with decoded values of Passive BLE Monitor's test suite (custom-components/ble_monitor, test_atc_parser.py).
- Ruuvi RAWv2: ruuvi-sensor-protocols dataformat_05.md test vectors (valid, maximum, minimum, invalid).
"""

import pytest

from core import ble_formats as fmt


def ad_structures(hex_payload):
    """{AD type: [data]} of a raw advertising payload (length, type, data...) — the BLE core spec's layout."""
    raw = bytes.fromhex(hex_payload)
    out, i = {}, 0
    while i < len(raw):
        length = raw[i]
        out.setdefault(raw[i + 1], []).append(raw[i + 2:i + 1 + length])
        i += 1 + length
    return out


def service_data(hex_payload):
    """{16-bit UUID: data} of the 0x16 (service data, 16-bit UUID) structures of a raw payload."""
    return {int.from_bytes(d[:2], "little"): d[2:] for d in ad_structures(hex_payload).get(0x16, [])}


# ------------------------------------------------------------------ BTHome v2
def test_bthome_example_advertisement_of_bthome_io():
    sd = service_data("020106" "0B094449592D73656E736F72" "0A16D2FC4002C40903BF13")
    assert ad_structures("020106" "0B094449592D73656E736F72")[0x09] == [b"DIY-sensor"]
    name, values, refusal = fmt.decode(sd, {})
    assert (name, refusal) == ("bthome", None)
    assert values == {"temperature": 25.0, "humidity": 50.55}


# object table of bthome.io/format: (example bytes after the device-information byte, our name, result)
BTHOME_TABLE = [
    ("0161", "battery", 97), ("02CA09", "temperature", 25.06), ("03BF13", "humidity", 50.55),
    ("04138A01", "pressure", 1008.83), ("05138A14", "illuminance", 13460.67), ("065E1F", "mass", 80.3),
    ("08CA06", "dewpoint", 17.38), ("0960", "count", 96), ("0A138A14", "energy", 1346.067),
    ("0B021B00", "power", 69.14), ("0D120C", "pm25", 3090), ("0E021C", "pm10", 7170), ("12E204", "co2", 1250),
    ("14020C", "moisture", 30.74), ("2E23", "humidity", 35), ("2F23", "moisture", 35), ("3D0960", "count", 24585),
    ("3E2A2C0960", "count", 1611213866), ("400C00", "distance", 12), ("424E3400", "duration", 13.39),
    ("434E34", "current", 13.39), ("4B138A14", "gas", 1346.067), ("4C41018A01", "gas", 25821.505),
    ("4d12138a14", "energy", 344593.17), ("56E803", "conductivity", 1000), ("59EA", "count", -22),
    ("5AEAEA", "count", -5398), ("5BEA0234EA", "count", -365690134), ("5D02EA", "current", -5.63),
]


@pytest.mark.parametrize("example, name, result", BTHOME_TABLE)
def test_bthome_object_table_examples(example, name, result):
    values, refusal = fmt.decode_bthome(bytes.fromhex("40" + example))
    assert refusal is None
    assert values == {name: result}


def test_bthome_frame_of_a_pvvx_thermometer_with_packet_id():
    # MiTemperature2 issue 154: 0e16d2fc 40 001b 0164 02c808 036c1a = packet 27, 100 %, 22.48 °C, 67.64 %
    values, refusal = fmt.decode_bthome(bytes.fromhex("40001b016402c808036c1a"))
    assert refusal is None
    assert values == {"packet": 27, "battery": 100, "temperature": 22.48, "humidity": 67.64}


def test_bthome_text_and_raw_objects_are_skipped_by_their_length():
    values, refusal = fmt.decode_bthome(bytes.fromhex("40" "530448656C6C" "5402AABB" "02CA09"))
    assert refusal is None and values == {"temperature": 25.06}


@pytest.mark.parametrize("payload, reason", [
    ("", fmt.SHORT),
    ("41" "02CA09", fmt.ENCRYPTED),            # bit 0 of the device information: encrypted
    ("45" "aabbccddeeff00112233", fmt.ENCRYPTED),
    ("20" "02CA09", fmt.BAD_VERSION),              # version 1 in bits 5-7
    ("60" "02CA09", fmt.BAD_VERSION),              # version 3
    ("40" "02CA", fmt.SHORT),                  # temperature cut short
    ("40" "0161" "FE00", fmt.UNKNOWN_OBJECT),  # 0xFE is no object: the rest cannot be sized
    ("40" "5305414243", fmt.SHORT),            # text longer than the frame
    ("40", fmt.SHORT),                         # no object at all
])
def test_bthome_malformed_frames_are_refused(payload, reason):
    assert fmt.decode_bthome(bytes.fromhex(payload)) == (None, reason)
    name, values, refusal = fmt.decode({fmt.BTHOME_UUID: bytes.fromhex(payload)}, {})
    assert (name, values, refusal) == ("bthome", None, reason)


# ------------------------------------------------------------------ pvvx custom and atc1441 (UUID 0x181A)
# ble_monitor test_atc_parser.py: HCI reports; the service data is after "161a18"
def test_pvvx_custom_format():
    sd = service_data("02010612161A18B2188D38C1A42B089011F70A43200F")
    name, values, refusal = fmt.decode(sd, {})
    assert (name, refusal) == ("pvvx", None)
    assert values == {"temperature": 20.91, "humidity": 44.96, "voltage": 2.807, "battery": 67, "packet": 32,
                      "flags": 15}


def test_pvvx_custom_format_older_firmware():
    name, values, refusal = fmt.decode(service_data("12161a18f4830238c1a4a9066911b60b58f70d"), {})
    assert (name, refusal) == ("pvvx", None)
    assert (values["temperature"], values["humidity"], values["voltage"], values["battery"], values["packet"]) \
        == (17.05, 44.57, 2.998, 88, 247)


def test_atc1441_format():
    name, values, refusal = fmt.decode(service_data("10161a18a4c1380283f400a22f5f0bf819"), {})
    assert (name, refusal) == ("atc1441", None)
    assert values == {"temperature": 16.2, "humidity": 47, "battery": 95, "voltage": 3.064, "packet": 25}


@pytest.mark.parametrize("length, reason", [(0, fmt.SHORT), (12, fmt.SHORT), (14, fmt.LENGTH), (16, fmt.LENGTH),
                                            (40, fmt.LENGTH)])
def test_environmental_frames_of_other_lengths_are_refused(length, reason):
    assert fmt.decode({fmt.ENVIRONMENTAL_UUID: bytes(length)}, {}) == ("pvvx", None, reason)


# ------------------------------------------------------------------ Ruuvi RAWv2
def test_ruuvi_valid_vector():
    data = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    name, values, refusal = fmt.decode({}, {fmt.RUUVI_COMPANY: data})
    assert (name, refusal) == ("ruuvi", None)
    assert values == {"temperature": 24.3, "humidity": 53.49, "pressure": 1000.44,      # 100044 Pa
                      "acceleration_x": 0.004, "acceleration_y": -0.004, "acceleration_z": 1.036,
                      "voltage": 2.977, "tx_power": 4, "movement": 66, "sequence": 205}


def test_ruuvi_maximum_and_minimum_vectors():
    high, _ = fmt.decode_ruuvi(bytes.fromhex("057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F"))
    assert high == {"temperature": 163.835, "humidity": 163.835, "pressure": 1155.34, "acceleration_x": 32.767,
                    "acceleration_y": 32.767, "acceleration_z": 32.767, "voltage": 3.646, "tx_power": 20,
                    "movement": 254, "sequence": 65534}
    low, _ = fmt.decode_ruuvi(bytes.fromhex("058001000000008001800180010000000000CBB8334C884F"))
    assert low == {"temperature": -163.835, "humidity": 0, "pressure": 500.0, "acceleration_x": -32.767,
                   "acceleration_y": -32.767, "acceleration_z": -32.767, "voltage": 1.6, "tx_power": -40,
                   "movement": 0, "sequence": 0}


def test_ruuvi_invalid_vector_reads_nothing_available():
    values, refusal = fmt.decode_ruuvi(bytes.fromhex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF"))
    assert refusal is None and values == {}


@pytest.mark.parametrize("payload, reason", [
    ("", fmt.SHORT), ("05", fmt.SHORT), ("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C88", fmt.SHORT),
    ("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F00", fmt.LENGTH),
    ("0317014535580" "3E804E705E60886", fmt.BAD_VERSION),       # data format 3 (RAWv1): not read
])
def test_ruuvi_malformed_frames_are_refused(payload, reason):
    assert fmt.decode({}, {fmt.RUUVI_COMPANY: bytes.fromhex(payload)}) == ("ruuvi", None, reason)


def test_an_advertisement_without_a_known_format():
    assert fmt.decode({0xFE95: b"\x30\x58"}, {0x004C: b"\x02\x15"}) == (None, None, fmt.NO_FORMAT)
    assert fmt.decode({}, {}) == (None, None, fmt.NO_FORMAT)


def test_random_bytes_never_raise():
    import random
    rnd = random.Random(18)
    for _ in range(3000):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(30)))
        for sd, md in (({fmt.BTHOME_UUID: data}, {}), ({fmt.ENVIRONMENTAL_UUID: data}, {}),
                       ({}, {fmt.RUUVI_COMPANY: data})):
            name, values, refusal = fmt.decode(sd, md)
            assert (values is None) != (refusal is None)
