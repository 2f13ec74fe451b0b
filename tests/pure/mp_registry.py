# Runs under CPython and MicroPython (tests/test_micropython.py): plain asserts.
from core import registry

assert registry.check_table() == [], registry.check_table()
# Identifiers the manuals give (SPEC §2).
assert registry.get("i1")[registry.DATA_ID] == 10000
assert registry.get("i2")[registry.DATA_ID] == 10001
assert [registry.get(k)[registry.DATA_ID] for k in ("avg_i1", "avg_i2", "avg_i3")] == [10023, 10024, 10025]
assert [registry.get(k)[registry.DATA_ID] for k in ("thd_i1", "thd_i2", "thd_i3")] == [100006, 100007, 100008]
# BACnet LLMM (SPEC §3.3): 204 = V1 of load 2; the 62 MM entries are all there.
assert registry.bacnet_instance(2, "v1") == 204
assert registry.split_bacnet_instance(204) == (2, "v1")
assert registry.by_bacnet_mm(61)[registry.KEY] == "multifluid"
assert registry.by_bacnet_mm(3)[registry.UNIT] == "Hz"
assert registry.snmp_table("i1") == 20
assert registry.get("ea_pos")[registry.STD_NAME] == "IEaPInst"
assert registry.by_data_id(10000)[registry.KEY] == "i1"
print("OK")
