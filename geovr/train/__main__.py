"""Entry point of `python -m geovr.train` (the guard matters: checkpoint writers may re-import __main__)."""
import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
