"""The ImportError raised when an optional backend's packages (a pip extra) are missing."""

from __future__ import annotations


def missing_extra(extra: str, what: str, cause: ImportError) -> ImportError:
    """An ImportError telling the user which `ferrograph[...]` extra brings `what`."""
    return ImportError(
        f"{what} needs the optional {extra!r} dependencies, which are not installed "
        f'({cause}). Install them with: pip install "ferrograph[{extra}]"',
        name=cause.name,
    )
