"""Serve a trained model over HTTP and ask it for recommendations, as a client would.

    python examples/serve_model.py --checkpoint runs/sasrec     # a `recengine train` output directory
    python examples/serve_model.py                              # trains a small model on synthetic data first

It starts `recengine serve` (the [serve] extra) in a child process, waits for the one line the server prints once it
listens (``serving <checkpoint> on http://host:port``), posts a history to /recommend, prints the answer and stops
the server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request


def train_small_model(out: str) -> str:
    """A small model on synthetic data (seconds), through the command line."""
    argv = ["train", "sasrec", "--dataset", "synthetic", "--synthetic-users", "60", "--synthetic-items", "40"]
    argv += ["--max-epochs", "1", "--dim", "16", "--max-len", "10", "--num-layers", "1", "--no-baselines"]
    subprocess.run([sys.executable, "-m", "recengine", *argv, "--out", out, "--overwrite", "--quiet"], check=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="a trained model (default: train a small one into runs/example-serve)")
    p.add_argument("--port", type=int, default=8123, help="the port to serve on")
    args = p.parse_args(argv)
    checkpoint = args.checkpoint or train_small_model(os.path.join("runs", "example-serve"))

    server = subprocess.Popen(
        [sys.executable, "-m", "recengine", "serve", "--checkpoint", checkpoint, "--port", str(args.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # "serving <checkpoint> on http://127.0.0.1:8123", or "" if it failed
        if not line.startswith("serving "):
            raise SystemExit(f"the server did not start (exit code {server.wait()})")
        url = line.split(" on ")[-1].strip()
        print(line.strip())
        request = urllib.request.Request(
            f"{url}/recommend",
            data=json.dumps({"history": [1, 2, 3], "k": 5}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        print(f"POST /recommend {{'history': [1, 2, 3], 'k': 5}} -> items {answer['items']}")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
