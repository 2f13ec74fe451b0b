"""Fixed-size time-series storage: format, store (chunks + journal), queries, and the service that runs it off the loop."""
