"""The security policy as the rest of the code asks it (SPEC §8).

A northbound service runs only while its configuration *and* the policy
allow it (``snmp.enabled`` and ``policy.snmp``). Which commands need which
policy switch (``policy.modbus_write`` for writes to devices, from any caller)
is the door's rights table, ``daemon/security/rights.py``. Changes apply at
once: services watch the settings through ``daemon/service.py``.
"""

SERVICE_SWITCHES = {
    "modbus": ("modbus.enabled", None),
    "snmp": ("snmp.enabled", "policy.snmp"),
    "bacnet": ("bacnet.enabled", "policy.bacnet"),
    # The RTU slave's configuration switch is bus.rs485.mode == "slave", which
    # is not a bool and not live: RtuSlaveService.enabled() adds it.
    "rtu_slave": ("policy.modbus_slave", None),
    # issue 16, the outbound clients. Exports have no bool switch of their own: push.protocol "none" is off
    # (ExportService.enabled() adds it); the policy's FTPS/SMTPS-mandatory switches refuse a plain transport
    # instead of stopping the service.
    "push": ("push.protocol", None),
    "mail": ("smtp.enabled", "policy.smtp"),
    "sntp": ("sntp.enabled", None),
    # issue 18: the MQTT publisher, only while the policy allows the cloud (off closes its connection at once)
    "mqtt": ("mqtt.enabled", "policy.cloud"),
}


def service_enabled(settings, service):
    config, policy = SERVICE_SWITCHES[service]
    on = settings.get(config)              # a bool, or a choice whose "none" is off (push.protocol)
    return on not in (False, None, "none") and (policy is None or bool(settings.get(policy)))


def service_keys(service):
    return tuple(k for k in SERVICE_SWITCHES[service] if k)

