"""The System page's work (issue 15): backups, restores, resets, upgrades; the door checks who may ask."""
