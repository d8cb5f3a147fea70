"""`python -m recengine.cli ...`: the same command line as `recengine` and `python -m recengine`."""

from recengine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
