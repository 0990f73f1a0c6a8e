"""Features: resolve what a request names, retrieve point-in-time (historical) and
online values, and load the online store (``materialize``).
"""

__all__: list[str] = []
