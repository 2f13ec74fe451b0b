"""The SNTP client: the gateway clock, then the meters' clocks."""
