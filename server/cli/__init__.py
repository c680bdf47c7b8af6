"""The `taskagent` command and the clients it drives."""
