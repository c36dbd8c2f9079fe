"""``python -m jpki``: the same command line as ``jpki``."""

from jpki.cli import main

if __name__ == "__main__":
    main(prog_name="jpki")
