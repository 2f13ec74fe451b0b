"""BACnet/IP server: the gateway and one virtual device per meter (SPEC §3.3).

``service.BacnetService`` is what the daemon starts; ``points`` says which
objects a meter has (the EDE tool reads it too); ``objects`` and ``site``
serve their properties from the cache; ``apps`` answers the services and
``rpm`` encodes ReadPropertyMultiple answers; ``stack`` routes between B/IP
(``transport``) and the virtual network. See docs/bacnet.md.
"""

from protocols.bacnet.service import BacnetService  # noqa: F401
