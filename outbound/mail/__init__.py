"""Alarm e-mail reports over SMTP/SMTPS, throttled, in English or French."""
