"""HTTP handlers by resource: plain async functions of a ``Context`` and a ``Call``."""
