"""Run the command-line interface: ``python -m photosearch``."""
from photosearch.cli import main

main()
