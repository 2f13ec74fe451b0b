"""The door's parts, one per area of the gateway; daemon/api.py composes ``Door`` from them."""
