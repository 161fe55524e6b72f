"""The typer app (`app`): parse, call one use case, render its Outcome, map errors to exit codes;
the `guard` subcommands in `guard`."""
