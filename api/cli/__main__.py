"""`python -m api.cli`: the tradecore command line."""

from api.cli.main import main

main()
