"""`python -m generator` runs the CLI, like the `helm-mlops` script."""

from generator.cli import main

main()
