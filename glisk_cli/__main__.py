"""`python -m glisk_cli` runs the same command as the `glisk` executable."""

from glisk_cli.cli.app import main

main()
