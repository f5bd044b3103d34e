"""`python -m indexer` runs the `mplug2-search` command line."""

from indexer.cli import main

main()
