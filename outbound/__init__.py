"""The gateway's own clients (issue 16, SPEC §5): scheduled exports to FTP/FTPS/HTTP(S) servers (``export``),
alarm e-mail reports (``mail``) and the SNTP client that keeps the clock and the meters' clocks (``sntp``).

They are front ends like the protocols: each receives a door (daemon/api.py) bound to its caller ("push",
"mail", "sntp"), owns one system alarm, and runs every blocking client library in the one bounded executor.
"""
