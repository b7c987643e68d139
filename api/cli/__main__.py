"""`python -m api.cli`: the tradecore command line."""

from api.cli.launcher import run_full_cli

run_full_cli()
