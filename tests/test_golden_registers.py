"""Golden register facts: addresses, types and scales of one meter of each family, as literals.

Every row below is copied by hand from ../shared/socomec-registers.md (the
section is given with each table): the register address, the words a meter
would answer (written out in hex), and the engineering value a reader of the
vendor table computes from them. core/catalogue.py must place the
measurement at that address and decode those words to that value; its own
tables are never the expected side. A failure here is a catalogue that
disagrees with the register facts (or facts that changed: then change both).
"""

import pytest

from core import catalogue, modbus_rtu as rtu
from daemon.runtime import discovery


def decoded(reference, load, key, address, words, network="3P+N"):
    """The catalogue's value of ``key`` from the hand-written ``words`` at ``address``."""
    mapping = catalogue.measurement_map(reference, load, network)
    assert key in mapping, "%s load %d: the catalogue has no %s (expected at 0x%04X)" % (
        reference, load, key, address)
    register, kind, multiplier = mapping[key]
    assert register == address, "%s load %d %s: catalogue at 0x%04X, register facts say 0x%04X" % (
        reference, load, key, register, address)
    assert catalogue.type_words(kind) == len(words), "%s %s: catalogue type %s is not %d words" % (
        reference, key, kind, len(words))
    blocks = catalogue.readable_blocks(reference, load)
    assert any(start <= address and address + len(words) <= start + size for start, size in blocks), (
        "%s %s at 0x%04X is outside the catalogue's readable blocks %s" % (reference, key, address, blocks))
    return catalogue.decode(kind, list(words), multiplier)


def close(got, expected):
    return abs(got - expected) <= 1e-9 * max(1.0, abs(expected))


# ---------------------------------------------------------------- §1 identification block (0xC350)

def identification_words(family, product_id, name, ext_name, netid=None):
    """A hand-written identification block: 66 words, or 69 with the B-30's resource version + NET ID."""
    words = [0] * 66
    words[0:4] = [0x0053, 0x004F, 0x0043, 0x004F]                 # 0xC350 "SOCO", STRING_16
    words[4], words[5], words[6], words[7] = family, product_id, 101, 100   # 0xC354..0xC357
    words[42:50] = [0x534F, 0x434F, 0x4D45, 0x4300, 0, 0, 0, 0]   # 0xC37A vendor "SOCOMEC", STRING_NORM
    words[50:58] = rtu.unpack_words(name.encode().ljust(16, b"\x00"))          # 0xC382 product name
    words[58:66] = rtu.unpack_words(ext_name.encode().ljust(16, b"\x00"))      # 0xC38A extended name
    if netid is not None:
        words += [7, netid >> 16, netid & 0xFFFF]                # 0xC392 resource version, 0xC393 NET ID
    return words


def test_identification_block_addresses():
    assert catalogue.IDENT_BASE == 0xC350                        # 50000
    offsets = {"family": (catalogue.IDENT_FAMILY, 0xC354), "product id": (catalogue.IDENT_PRODUCT, 0xC355),
               "software version": (catalogue.IDENT_SOFTWARE, 0xC357), "serial": (catalogue.IDENT_SERIAL, 0xC358),
               "vendor name": (catalogue.IDENT_VENDOR, 0xC37A), "product name": (catalogue.IDENT_NAME, 0xC382),
               "extended name": (catalogue.IDENT_EXT_NAME, 0xC38A), "NET ID": (catalogue.IDENT_NETID, 0xC393)}
    for what, (offset, address) in offsets.items():
        assert 0xC350 + offset == address, "%s at 0x%04X, socomec-registers §1 says 0x%04X" % (
            what, 0xC350 + offset, address)


def test_detection_reads_no_further_than_the_identification_block():
    # The longest identification block (B-30: 0xC350..0xC394, the NET ID's 2 words at 0xC393 included) is
    # 69 words; a read past it is refused (exception 02) by a meter that checks its blocks.
    assert catalogue.IDENT_BASE + catalogue.IDENT_WORDS <= 0xC395, (
        "detection reads %d words from 0xC350, i.e. up to 0x%04X, past the end of the longest identification "
        "block (0xC394, socomec-registers §1: 66 words, 69 on the B-30 with its NET ID at 0xC393-0xC394)"
        % (catalogue.IDENT_WORDS, catalogue.IDENT_BASE + catalogue.IDENT_WORDS - 1))


def test_a_b30_identification_block_with_its_net_id():
    words = identification_words(400, 4130, "PMD EE", "DIRIS B30", netid=0x00D5038A)
    assert len(words) == 69
    ident = discovery.parse_identification(words)
    assert ident is not None, "a block starting with SOCO is a Socomec device"
    assert (ident["family"], ident["product_id"], ident["vendor"], ident["name"], ident["ext_name"]) == (
        400, 4130, "SOCOMEC", "PMD EE", "DIRIS B30")
    assert ident["netid"] == 0xD5038A
    assert catalogue.identify(400, 4130, "DIRIS B30")[catalogue.REF] == "B-30 RS485"
    # the extended-name prefix wins over the product ID (OpenEMS's rule, socomec-registers §1 and §6.1)
    assert catalogue.identify(400, 9999, "DIRIS B30 v2")[catalogue.REF] == "B-30 RS485"
    words[0] = 0x0054                                             # "TOCO": not a Socomec device
    assert discovery.parse_identification(words) is None


def test_a_countis_identification_block_has_no_net_id():
    words = identification_words(100, 1023, "COUNTIS E23", "COUNTIS E23")
    assert len(words) == 66                                       # COUNTIS tables end at 0xC391
    try:
        ident = discovery.parse_identification(words)
    except (ValueError, IndexError) as exc:
        pytest.fail("the 66-word identification block of a COUNTIS E23 (socomec-registers §1: the NET ID at "
                    "0xC393 is B-30 only) cannot be parsed: %r" % exc)
    assert ident is not None
    assert (ident["family"], ident["ext_name"]) == (100, "COUNTIS E23")
    assert not ident.get("netid"), "a device without a NET ID shows none, not %r" % ident.get("netid")
    assert catalogue.identify(100, 1023, "COUNTIS E23")[catalogue.REF] == "E23"


# ---------------------------------------------------------------- §3.3 Digiware / B-30 per-load windows

def test_digiware_load_base_and_stride():
    # socomec-registers §3.3: load n base = 0x4800 + (n-1) x 0x800; §6.5: loads 5-6 continue the stride
    assert [catalogue.load_base(n) for n in range(1, 7)] == [0x4800, 0x5000, 0x5800, 0x6000, 0x6800, 0x7000]
    for reference, loads in (("B-30 RS485", 4), ("I-35", 3)):
        for load, base in zip(range(1, loads + 1), (0x4800, 0x5000, 0x5800, 0x6000)):
            blocks = catalogue.readable_blocks(reference, load)
            assert (base, 92) in blocks, "%s load %d: instantaneous block 0x%04X, 92 words" % (reference, load, base)
            assert (base + 0x580, 66) in blocks, "%s load %d: energy block 0x%04X, 66 words" % (
                reference, load, base + 0x580)


# (key, address, words, engineering value) — instantaneous block of load 1 at 0x4800, energy block at 0x4D80
B30_LOAD1 = (
    ("freq", 0x480A, (0x0000, 0xC35C), 50.012),         # U32 Hz/1000
    ("v_sys", 0x4804, (0x0000, 0x59D8), 230.00),        # U32 V/100
    ("v1", 0x480C, (0x0000, 0x59E4), 230.12),
    ("v3", 0x4810, (0x0000, 0x5A0C), 230.52),
    ("u12", 0x4814, (0x0000, 0x9BA6), 398.46),
    ("i1", 0x481A, (0x0000, 0x3039), 12.345),           # U32 A/1000
    ("in", 0x4820, (0x0000, 0x01F4), 0.5),
    ("i_unb", 0x4822, (0x00FA,), 2.5),                  # U16 %/100
    ("i_dir", 0x4823, (0x0000, 0x2710), 10.0),          # U32 A/1000 at an odd address
    ("s_nom", 0x482A, (0x0000, 0xAFC8), 45000),         # U32 VA
    ("p", 0x482C, (0xFFFF, 0xFA24), -1500),             # S32 W
    ("q", 0x482E, (0x0000, 0x0320), 800),               # S32 var
    ("s", 0x4834, (0x0000, 0x06A4), 1700),              # U32 VA
    ("pf", 0x4836, (0xFC9A,), -0.870),                  # S16 /1000, negative = leading
    ("pf_type", 0x4837, (0x0001,), 1),                  # U8 1 = leading
    ("p1", 0x4838, (0xFFFF, 0xFE0C), -500),
    ("q3", 0x4842, (0xFFFF, 0xFF38), -200),
    ("s2", 0x4852, (0x0000, 0x0258), 600),
    ("pf1", 0x4856, (0x0352,), 0.850),
    ("pf3_type", 0x485B, (0x0002,), 2),
    ("ea_pos", 0x4D83, (0x0000, 0x04D2, 0x0038), 1234560),   # U32 kWh + U16 residual in 10 Wh -> Wh
    ("ea_neg", 0x4D86, (0x0000, 0x0001, 0x0000), 1000),
    ("er_pos", 0x4D89, (0x0001, 0x0000, 0x0063), 65536990),
    ("es", 0x4D8F, (0x0000, 0x000A, 0x0005), 10050),
)


@pytest.mark.parametrize("reference", ("B-30 RS485", "I-35"))
@pytest.mark.parametrize("key, address, words, value", B30_LOAD1, ids=[r[0] for r in B30_LOAD1])
def test_digiware_and_b30_load_1(reference, key, address, words, value):
    got = decoded(reference, 1, key, address, words)
    assert close(got, value), "%s %s: catalogue decodes %r as %r, socomec-registers §3.3 gives %r" % (
        reference, key, words, got, value)


def test_digiware_load_3_is_one_stride_further():
    # the same words at 0x5800 + offset are load 3's (0x5800 = 0x4800 + 2 x 0x800)
    assert close(decoded("I-35", 3, "i1", 0x581A, (0x0000, 0x3039)), 12.345)
    assert close(decoded("I-35", 3, "p", 0x582C, (0xFFFF, 0xFA24)), -1500)
    assert close(decoded("I-35", 3, "ea_pos", 0x5D83, (0x0000, 0x04D2, 0x0038)), 1234560)
    assert close(decoded("B-30 RS485", 4, "v1", 0x600C, (0x0000, 0x59E4)), 230.12)


def test_an_i30_carries_three_single_phase_loads_as_in_annex_i():
    # M-70 manual, annex I - 5 (seed 004), the example architecture: "Produit I-30 I-30 / Adresse Modbus 4 5 /
    # Type de charge Charge 1 : 3P + N - 3CT | Charge 1 : 1P + N - 1CT Charge 2 : 1P + N - 1CT Charge 3 :
    # 1P + N - 1CT", and "1.3.6.1.4.1.4555.10.20.20.1.10000.5. 3" is I1 of load 3 of that I-30.
    loads = catalogue.product("I-30")[catalogue.LOADS]
    assert loads >= 3, (
        "the catalogue gives the Digiware I-30 %d load(s) (socomec-registers §6.5 '[ours]'), but annex I of the "
        "M-70 manual shows an I-30 with three 1P+N loads (its load 3 is read at ...10000.5.3)" % loads)
    assert close(decoded("I-30", 3, "i1", 0x581A, (0x0000, 0x3039), "1P+N"), 12.345)


def test_digiware_u30_network_frequency_is_in_thousandths():
    # socomec-registers §3.3, network-level block at 0x9000: "F Hz/1000" (the offsets are [ours])
    register, kind, multiplier = catalogue.measurement_map("U-30", 0)["freq"]
    assert 0x9000 <= register < 0x9080
    assert close(catalogue.decode(kind, [0x0000, 0xC35C], multiplier), 50.012)


# ---------------------------------------------------------------- §2, §3.1 PMD classic (DIRIS A-40)

# common real-time table 0xC550 (A-10 scales, convention §6.4) and the A-14/COUNTIS energy column of 0xC650
A40 = (
    ("u12", 0xC552, (0x0000, 0x9BA6), 398.46),          # U32 V/100
    ("v1", 0xC558, (0x0000, 0x59E4), 230.12),
    ("v3", 0xC55C, (0x0000, 0x5A0C), 230.52),
    ("freq", 0xC55E, (0x0000, 0x1389), 50.01),          # U32 Hz/100 on the
    ("i1", 0xC560, (0x0000, 0x1403), 5.123),            # U32 mA
    ("in", 0xC566, (0x0000, 0x0064), 0.1),
    ("p", 0xC568, (0xFFFF, 0xFB2E), -12340),            # S32 in 10 W
    ("q", 0xC56A, (0x0000, 0x0064), 1000),              # S32 in 10 var
    ("s", 0xC56C, (0x0000, 0x0190), 4000),              # U32 in 10 VA
    ("pf", 0xC56E, (0xFFFF, 0xFC9A), -0.870),           # S32 /1000
    ("p3", 0xC574, (0x0000, 0x0032), 500),
    ("q1", 0xC576, (0xFFFF, 0xFFF6), -100),
    ("s3", 0xC580, (0x0000, 0x0014), 200),
    ("pf3", 0xC586, (0x0000, 0x0384), 0.900),
    ("ea_pos", 0xC652, (0x0000, 0x04D2), 1234000),      # U32 kWh -> Wh
    ("er_pos", 0xC654, (0x0000, 0x0010), 16000),        # U32 kvarh -> varh
    ("ea_neg", 0xC658, (0x0000, 0x0002), 2000),
    ("er_neg", 0xC65A, (0x0000, 0x0003), 3000),
)


@pytest.mark.parametrize("key, address, words, value", A40, ids=[r[0] for r in A40])
def test_pmd_classic_a40(key, address, words, value):
    got = decoded("A-40", 1, key, address, words)
    assert close(got, value), "A-40 %s: catalogue decodes %r as %r, socomec-registers §2/§3.1 give %r" % (
        key, words, got, value)


def test_pmd_blocks_start_where_the_tables_do():
    for reference in ("A-40", "E23"):
        starts = [start for start, _size in catalogue.readable_blocks(reference, 0)]
        assert 0xC550 in starts and 0xC650 in starts, (reference, starts)
    # socomec-registers §2: "Block size: 74 words on A-10, 62 on A-14/COUNTIS"
    assert (0xC550, 62) in catalogue.readable_blocks("E23", 0)
    assert dict(catalogue.readable_blocks("A-40", 0))[0xC550] <= 74


# ---------------------------------------------------------------- §2, §3.1 COUNTIS E

E23 = (
    ("v1", 0xC558, (0x0000, 0x59E4), 230.12),
    ("i1", 0xC560, (0x0000, 0x1403), 5.123),
    ("p", 0xC568, (0xFFFF, 0xFB2E), -12340),
    ("pf1", 0xC582, (0x0000, 0x0384), 0.900),
    ("ea_pos", 0xC652, (0x0000, 0x04D2), 1234000),
    ("es", 0xC656, (0x0000, 0x0D80), 3456000),           # kVAh on COUNTIS E14/E23/E24
    ("er_neg", 0xC65A, (0x0000, 0x0003), 3000),
)


@pytest.mark.parametrize("key, address, words, value", E23, ids=[r[0] for r in E23])
def test_countis_e23(key, address, words, value):
    got = decoded("E23", 1, key, address, words)
    assert close(got, value), "E23 %s: catalogue decodes %r as %r, socomec-registers §2/§3.1 give %r" % (
        key, words, got, value)


# socomec-registers §2, row F (0xC55E): "Hz/100 (A-10, A-14, E34/E44, A-30); Hz/1000 on COUNTIS E14/E23/E24"
COUNTIS_FREQUENCY = (("E14", "1P+N", 50.012), ("E23", "3P+N", 50.012), ("E24", "3P+N", 50.012),
                     ("E34", "3P+N", 500.12), ("E44", "3P+N", 500.12))


@pytest.mark.parametrize("reference, network, value", COUNTIS_FREQUENCY, ids=[r[0] for r in COUNTIS_FREQUENCY])
def test_countis_frequency_scale(reference, network, value):
    # the same words 0x0000 0xC35C (50012) read 50.012 Hz at Hz/1000 and 500.12 Hz at Hz/100
    got = decoded(reference, 1, "freq", 0xC55E, (0x0000, 0xC35C), network)
    assert close(got, value), (
        "COUNTIS %s frequency at 0xC55E is %s (socomec-registers §2, [OE-E14]/[OE-E23]/[OE-E34]): raw 50012 "
        "must read %r Hz, the catalogue reads %r Hz" % (
            reference, "Hz/1000" if value < 100 else "Hz/100", value, got))


def test_countis_e34_e44_have_no_total_er_neg_nor_es():
    # socomec-registers §3.1: on COUNTIS E34/E44, 0xC656 (total Es) and 0xC65A (total Er-) are Reserved
    for reference in ("E34", "E44"):
        offered = catalogue.measurement_map(reference, 1)
        wrong = sorted(key for key in ("es", "er_neg") if key in offered)
        assert not wrong, (
            "COUNTIS %s: the catalogue maps %s to %s, Reserved words on this model (socomec-registers §3.1, "
            "[OE-E34]): the gateway would serve a Reserved 0 as a good value" % (
                reference, wrong, ["0x%04X" % offered[k][0] for k in wrong]))


def test_countis_e14_offers_only_its_documented_single_phase_values():
    # socomec-registers §2: "Single-phase COUNTIS E14: only V1, F (Hz/1000), I1, ΣP/ΣQ/ΣS/ΣPF, P1, Q1, S1,
    # PF1 are defined; the rest is reserved"; §3.1: the E14 energy column has Ea+, Er+, Es, Ea-, Er-
    documented = {"v1", "freq", "i1", "p", "q", "s", "pf", "p1", "q1", "s1", "pf1",
                  "ea_pos", "er_pos", "es", "ea_neg", "er_neg"}
    assert set(catalogue.measurement_map("E14", 1, "1P+N")) <= documented
