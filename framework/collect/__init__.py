"""Collect data: check input tables, append events durably, generate the example product."""

__all__: list[str] = []
