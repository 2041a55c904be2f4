"""The ``tribert`` command line: ``convert``, ``run``, ``parity``, ``env`` (see :mod:`tribert.cli`).

The top layer of the package table (docs/architecture.md): it may import every
backend, and nothing imports it. Importing it imports no framework; each
subcommand imports the backends it needs.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tribert")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
