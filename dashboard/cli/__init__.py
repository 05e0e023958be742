"""The ``facetrail`` command line: each module parses, calls the public API of core and audit, and formats."""

from dashboard.cli.common import main

__all__ = ["main"]
