"""Web configuration and status UI: HTTP server on the daemon's loop plus static assets."""
