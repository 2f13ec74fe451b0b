"""Signed upgrades: the package format and its checks, the two slots and the roll-back (issue 15)."""
