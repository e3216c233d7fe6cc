"""`python -m irflow.cli`: the same as the `irflow` command."""

from irflow.cli import main

main()
