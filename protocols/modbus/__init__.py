"""Modbus TCP server/gateway and RTU slave: one request handler, the gateway's own tables, the register map."""
