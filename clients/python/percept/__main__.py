"""`python -m percept`: the same as the `percept` command."""

from percept.cli import main

main()
