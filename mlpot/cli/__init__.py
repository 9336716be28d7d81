"""The `mlpot` command line (typer). Each command parses options and calls one library function."""
