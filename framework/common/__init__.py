"""Shared by every stage: JSON-safe values, one parser for aware times."""

__all__: list[str] = []
