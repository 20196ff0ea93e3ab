"""Observability: online quality from the logs (:mod:`.online`, no HTTP, no Prometheus), the
Prometheus metrics of each role (:mod:`.metrics`) and the ``cinerec report`` table and chart
(:mod:`.report`). See ``docs/observability.md``."""
