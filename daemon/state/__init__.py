"""The state every front end reads through the door: cache, topology, alarms and the event log, settings, extremes."""
