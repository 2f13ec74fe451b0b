"""Fixed-size time-series storage: format, store (slots + chunks), its journal and reads, queries, and the service that runs it off the loop."""
