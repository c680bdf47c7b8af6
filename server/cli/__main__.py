"""`python -m server.cli` runs the `taskagent` command."""

from server.cli.main import main

main()
