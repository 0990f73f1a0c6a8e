"""Collect data: check input tables, append events durably (the example product's
generators live beside it, in examples/)."""

__all__: list[str] = []
