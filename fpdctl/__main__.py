"""``python -m fpdctl``."""

from fpdctl.cli.app import run

if __name__ == "__main__":
    run()
