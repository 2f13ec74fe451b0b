"""Scheduled exports of the stored curves as CSV or EMS files, spooled and delivered by FTP/FTPS/HTTP(S)."""
