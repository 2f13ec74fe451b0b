"""The security policy, rights of callers, secrets at rest."""
