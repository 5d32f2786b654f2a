"""Metrics and interactive tracking: the ingestion and query API, and ``ais.track`` in real processes."""
