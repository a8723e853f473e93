"""`python -m openvisit` runs the command line."""

from openvisit.cli import main

if __name__ == "__main__":
    main()
