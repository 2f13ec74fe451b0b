"""BACnet object classes whose properties read the gateway's cache (SPEC §3.3).

bacpypes3 declares objects as classes with their property lists; we keep
its classes (so its ReadProperty / ReadPropertyMultiple services, encoders
and ALL / REQUIRED / OPTIONAL handling apply) but give every exposed
property a getter over the live data instead of a stored value, and skip
bacpypes3's per-instance initialisation (0.5 ms an object: 3 s for a
32-meter site, too long to block the loop on a topology change).

A property is exposed when the class has an attribute for it; everything
else of the bacpypes3 class reads as unknown-property. No getter has a
setter except Binary Output Present_Value (written through the service's
WriteProperty handler, never by attribute), so WriteProperty elsewhere is
write-access-denied.
"""

import inspect
import time as _time
import warnings

from bacpypes3.basetypes import (
    AddressBinding,
    BinaryPV,
    DateTime,
    DeviceStatus,
    EngineeringUnits,
    EventState,
    OptionalUnsigned,
    Polarity,
    PriorityValue,
    PropertyIdentifier,
    Reliability,
    Segmentation,
    StatusFlags,
)
from bacpypes3.constructeddata import ArrayOf, ListOf
from bacpypes3.object import AnalogInputObject, BinaryInputObject, BinaryOutputObject, DeviceObject
from bacpypes3.primitivedata import (
    Boolean,
    CharacterString,
    Date,
    Integer,
    ObjectIdentifier,
    ObjectType,
    Real,
    Time,
    Unsigned,
)
from bacpypes3.vendor import VendorInfo

from protocols.bacnet import points as pts

# The project has no ASHRAE-assigned vendor identifier: 65535 is unassigned
# and scopes our proprietary property numbers (docs/bacnet.md). bacpypes3's
# class registry reads the module-level ``_vendor_id``.
VENDOR_ID = 65535
_vendor_id = VENDOR_ID
VENDOR_NAME = "Open M-70 project"
PROTOCOL_REVISION = 14            # Property_List exists from revision 14 on
MAX_APDU = 1476                   # B/IP maximum
APDU_TIMEOUT_MS = 3000


class VendorPropertyIdentifier(PropertyIdentifier):
    """Annex II vendor properties of the M-70, numbered from 512 in the annex's order."""
    _vendor_id = VENDOR_ID
    instantaneousTimestamp = 512
    averageTimestamp = 513
    maxAverageValue = 514
    maxAverageTimestamp = 515
    minAverageValue = 516
    minAverageTimestamp = 517
    harmonicsRow02 = 518
    harmonicsRow03 = 519
    harmonicsRow04 = 520
    harmonicsRow05 = 521
    harmonicsRow06 = 522
    harmonicsRow07 = 523
    harmonicsRow08 = 524
    harmonicsRow09 = 525
    harmonicsRow10 = 526
    energyTotalResidual = 527
    energyTotalHourmeter = 528
    energyPartial = 529
    energyPartialResidual = 530
    energyPartialHourmeter = 531
    energyTotalLagging = 532
    energyTotalLaggingRes = 533
    energyTotalLeading = 534
    energyTotalLeadingRes = 535
    energyLastPartial = 536
    energyLastPartialRes = 537
    energyLastPartialTimestamp = 538
    multifluidPartial = 539
    multifluidWeight = 540
    instantMinMaxReset = 541
    averageMinMaxReset = 542
    versionBuildDate = 543
    operatingHourCounter = 544


vendor_info = VendorInfo(VENDOR_ID, ObjectType, VendorPropertyIdentifier)

_NORMAL = EventState("normal")
_FALSE = Boolean(False)
_POLARITY = Polarity("normal")
_RELIABILITY = dict((name, Reliability(name)) for name in pts.RELIABILITIES)
_FLAGS = {False: StatusFlags([0, 0, 0, 0]), True: StatusFlags([0, 1, 0, 0])}
_PRIORITY_ARRAY = ArrayOf(PriorityValue, _length=16)
_UNSPECIFIED = DateTime(date=Date((255, 255, 255, 255)), time=Time((255, 255, 255, 255)))


def local_datetime(ts, offset_min):
    """BACnet DateTime of unix time ``ts`` shifted to local time (``offset_min`` east of UTC)."""
    if ts is None:
        return _UNSPECIFIED
    tm = _time.gmtime(ts + offset_min * 60)
    hundredths = int((ts % 1) * 100)
    return DateTime(date=Date((tm.tm_year - 1900, tm.tm_mon, tm.tm_mday, tm.tm_wday + 1)),
                    time=Time((tm.tm_hour, tm.tm_min, tm.tm_sec, hundredths)))


def _exposed(cls, names):
    """Property_List of a class: the exposed properties minus the four the standard leaves out."""
    skip = ("objectIdentifier", "objectName", "objectType", "propertyList")
    return ArrayOf(PropertyIdentifier)([VendorPropertyIdentifier(n) for n in names if n not in skip])


class _Generated:
    """Cheap construction: identity stored directly, everything else read through getters."""

    def _setup(self, view, object_type, instance, point=None):
        object.__setattr__(self, "_app", None)
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "_point", point)
        object.__setattr__(self, "objectIdentifier", ObjectIdentifier((object_type, instance)))



class _Measured(_Generated):
    """Objects whose value is one cache entry: quality shows in Status_Flags and Reliability."""
    objectName = property(lambda self: CharacterString(self._point.name))
    description = property(lambda self: CharacterString(self._point.description))
    eventState = property(lambda self: _NORMAL)
    outOfService = property(lambda self: _FALSE)

    def _reading(self, key=None):
        point = self._point
        return self._view.reading(point.load, key or point.key)

    def _quality(self):
        _value, fault, reliability = pts.present(self._reading(), self._view.link())
        return fault, reliability

    statusFlags = property(lambda self: _FLAGS[self._quality()[0]])
    reliability = property(lambda self: _RELIABILITY[self._quality()[1]])


class MeterAnalogInput(_Measured, AnalogInputObject):
    """AI LLMM: present value, quality, min/max seen, average and their timestamps."""
    minimumValueTimestamp: DateTime
    maximumValueTimestamp: DateTime
    averageValue: Real
    instantaneousTimestamp: DateTime
    averageTimestamp: DateTime
    maxAverageValue: Real
    maxAverageTimestamp: DateTime
    minAverageValue: Real
    minAverageTimestamp: DateTime

    def __init__(self, view, point):
        self._setup(view, "analog-input", point.instance, point)
        object.__setattr__(self, "units", EngineeringUnits(point.units))

    objectType = ObjectType("analog-input")
    presentValue = property(lambda self: Real(pts.present(self._reading())[0]))     # the value whatever the link
    instantaneousTimestamp = property(lambda self: self._view.datetime(self._reading().timestamp))

    def _extreme(self, key, which):
        entry = self._view.extremes(self._point.load, key)
        return entry[which] if entry else None


# bacpypes3 registers one class per object type and vendor and warns about
# the others; our variants share the type on purpose.
warnings.filterwarnings("ignore", message="object type .* already registered", module="bacpypes3")


class MinMaxAnalogInput(MeterAnalogInput):
    """An AI of annex II's min/max column: extremes of the values seen since the daemon started (daemon/state/extremes.py)."""
    minPresValue = property(lambda self: Real(self._extreme(self._point.key, 0) or 0.0))
    maxPresValue = property(lambda self: Real(self._extreme(self._point.key, 2) or 0.0))
    minimumValueTimestamp = property(lambda self: self._view.datetime(self._extreme(self._point.key, 1)))
    maximumValueTimestamp = property(lambda self: self._view.datetime(self._extreme(self._point.key, 3)))


class AveragedAnalogInput(MinMaxAnalogInput):
    """An AI whose meter also provides the average (I1..In, P, Q, S)."""
    averageValue = property(lambda self: Real(pts.present(self._reading(self._point.average_key))[0]))
    averageTimestamp = property(lambda self: self._view.datetime(self._reading(self._point.average_key).timestamp))
    minAverageValue = property(lambda self: Real(self._extreme(self._point.average_key, 0) or 0.0))
    minAverageTimestamp = property(lambda self: self._view.datetime(self._extreme(self._point.average_key, 1)))
    maxAverageValue = property(lambda self: Real(self._extreme(self._point.average_key, 2) or 0.0))
    maxAverageTimestamp = property(lambda self: self._view.datetime(self._extreme(self._point.average_key, 3)))


class MeterBinaryInput(_Measured, BinaryInputObject):
    def __init__(self, view, point):
        self._setup(view, "binary-input", point.instance, point)

    objectType = ObjectType("binary-input")
    presentValue = property(lambda self: BinaryPV(1 if pts.present(self._reading())[0] else 0))
    polarity = property(lambda self: _POLARITY)


class MeterBinaryOutput(_Measured, BinaryOutputObject):
    """An output: Present_Value is the state the device reports; commands go through the priority array."""

    def __init__(self, view, point):
        self._setup(view, "binary-output", point.instance, point)

    objectType = ObjectType("binary-output")
    presentValue = property(lambda self: BinaryPV(1 if pts.present(self._reading())[0] else 0))
    polarity = property(lambda self: _POLARITY)
    relinquishDefault = property(lambda self: BinaryPV(0))

    @property
    def priorityArray(self):
        slots = self._view.priority_slots(self._point.key)
        return _PRIORITY_ARRAY([PriorityValue(null=()) if value is None else PriorityValue(enumerated=value)
                                for value in slots])

    @property
    def currentCommandPriority(self):
        slots = self._view.priority_slots(self._point.key)
        for index, value in enumerate(slots):
            if value is not None:
                return OptionalUnsigned(unsigned=index + 1)
        return OptionalUnsigned(null=())


class VirtualDevice(_Generated, DeviceObject):
    """The Device object of the gateway or of one meter; ``view`` says which."""
    serialNumber: CharacterString

    def __init__(self, view):
        self._setup(view, "device", view.instance)

    objectType = ObjectType("device")
    objectName = property(lambda self: CharacterString(self._view.name()))
    description = property(lambda self: CharacterString(self._view.description()))
    location = property(lambda self: CharacterString(self._view.location()))
    systemStatus = property(lambda self: DeviceStatus(self._view.system_status()))
    vendorName = property(lambda self: CharacterString(VENDOR_NAME))
    vendorIdentifier = property(lambda self: Unsigned(VENDOR_ID))
    modelName = property(lambda self: CharacterString(self._view.model_name()))
    firmwareRevision = property(lambda self: CharacterString(self._view.firmware()))
    applicationSoftwareVersion = property(lambda self: CharacterString(self._view.firmware()))
    serialNumber = property(lambda self: CharacterString(self._view.serial()))
    protocolVersion = property(lambda self: Unsigned(1))
    protocolRevision = property(lambda self: Unsigned(PROTOCOL_REVISION))
    protocolServicesSupported = property(lambda self: self._app.get_services_supported())
    protocolObjectTypesSupported = property(lambda self: self._view.object_types_supported())
    objectList = property(lambda self: ArrayOf(ObjectIdentifier)(self._view.object_list()))
    maxApduLengthAccepted = property(lambda self: Unsigned(MAX_APDU))
    segmentationSupported = property(lambda self: Segmentation("segmented-transmit"))
    maxSegmentsAccepted = property(lambda self: Unsigned(16))
    apduTimeout = property(lambda self: Unsigned(APDU_TIMEOUT_MS))
    numberOfApduRetries = property(lambda self: Unsigned(3))
    deviceAddressBinding = property(lambda self: ListOf(AddressBinding)([]))
    databaseRevision = property(lambda self: Unsigned(self._view.database_revision()))
    localDate = property(lambda self: self._view.datetime(self._view.now()).date)
    localTime = property(lambda self: self._view.datetime(self._view.now()).time)
    utcOffset = property(lambda self: Integer(self._view.utc_offset()))
    daylightSavingsStatus = property(lambda self: Boolean(self._view.dst()))
    statusFlags = property(lambda self: _FLAGS[self._view.device_fault()])
    reliability = property(lambda self: _RELIABILITY[self._view.device_reliability()])


def _class_properties(cls):
    return [name for name in cls._elements
            if name == "objectIdentifier" or inspect.getattr_static(cls, name, None) is not None]


OBJECT_CLASSES = (MeterAnalogInput, MinMaxAnalogInput, AveragedAnalogInput, MeterBinaryInput, MeterBinaryOutput,
                  VirtualDevice)

for _cls in OBJECT_CLASSES:
    extra = ("units",) if issubclass(_cls, MeterAnalogInput) else ()     # an instance attribute
    _cls.EXPOSED = tuple(n for n in _class_properties(_cls) if n != "propertyList") + extra
    _cls.propertyList = property(lambda self, _list=_exposed(_cls, _cls.EXPOSED): _list)
    _cls.EXPOSED = _cls.EXPOSED + ("propertyList",)


def vendor_number(name):
    return int(VendorPropertyIdentifier(name))


def selection(cls, which):
    """Properties an RPM with ALL / REQUIRED / OPTIONAL returns, in Property_List order.

    Property_List itself is left out of ALL and REQUIRED, as bacpypes3 does.
    """
    cached = cls.__dict__.get("_selections")
    if cached is None:
        required = set()
        for klass in cls.__mro__:
            required.update(getattr(klass, "_required", ()))
        exposed = cls.EXPOSED
        cached = {
            "all": tuple(n for n in exposed if n != "propertyList"),
            "required": tuple(n for n in exposed if n in required and n != "propertyList"),
            "optional": tuple(n for n in exposed if n not in required),
        }
        cls._selections = cached
    return cached[which]


def make_object(view, point):
    """The object of ``point`` in a meter's device."""
    if point.kind == pts.ANALOG_INPUT:
        if point.average_key:
            return AveragedAnalogInput(view, point)
        return MinMaxAnalogInput(view, point) if point.minmax else MeterAnalogInput(view, point)
    if point.kind == pts.BINARY_INPUT:
        return MeterBinaryInput(view, point)
    return MeterBinaryOutput(view, point)
