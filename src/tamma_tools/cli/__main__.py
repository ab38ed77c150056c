"""``python -m tamma_tools.cli``: the same as the ``tamma-tools`` command."""

from tamma_tools.cli import main

main()
