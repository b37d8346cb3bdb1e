"""The version of quorum-py, read in one place: every command's ``--version``, the node's
``web3_clientVersion`` and the manager's ``GET /version`` give this.

It comes from the installed distribution's metadata (``importlib.metadata``), so the
version is written once, in ``pyproject.toml``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "quorum-py"
#: What a source tree that was never installed (no distribution metadata) reports.
UNKNOWN_VERSION = "0+unknown"


def package_version() -> str:
    """The installed quorum-py's version, e.g. ``"0.2.0"``, or ``UNKNOWN_VERSION``."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN_VERSION


VERSION = package_version()
