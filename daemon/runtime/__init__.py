"""The runtime: bus engines, pollers, detection, curve download, device-alarm reader, writes to devices."""
