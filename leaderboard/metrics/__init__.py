"""Prometheus metrics through Ray's metrics agent (docs/metrics.md): ``specs`` names them,
``labels`` keeps label values bounded, ``record`` records them with ``ray.util.metrics``."""
