"""`python -m summitcast.cli` runs the command line."""

from summitcast.cli.main import main

main()
