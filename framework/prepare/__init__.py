"""Prepare data: check the inputs, build the change-point window tables and their
index, register the repo with Feast (``apply``).
"""

__all__: list[str] = []
