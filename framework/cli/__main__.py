"""``python -m framework.cli``: the same as the ``lifecycle`` command."""

from framework.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
