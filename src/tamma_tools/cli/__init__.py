"""The ``tamma-tools`` command: the library from a terminal.

Exit codes: 0 success; 1 the command ran and found a problem (invalid tool file, refused or
failed calls, a broken audit chain); 2 usage error; 3 configuration error; 4 the model server
failed; 70 an internal error (run with ``--debug`` for the traceback).
"""

from __future__ import annotations

import sys

from tamma_tools.cli.app import cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="tamma-tools", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
