"""Models: the typed model metadata, the registry of versions, and the one scoring path."""

__all__: list[str] = []
