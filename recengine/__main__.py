"""`python -m recengine ...`: the command line (what `torchrun ... -m recengine train sasrec` starts per rank)."""

from recengine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
