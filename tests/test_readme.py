"""The README's Python examples run as written, each on its own (so the documentation stays true and no snippet
leans on an import made by an earlier one)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)

#: what a block that defines the name on the left must leave behind (checked after the block, in its namespace)
POSTCONDITIONS = {
    "pooled": "assert pooled.shape == (2, 128)",
    "lse": "assert ids.shape == (4, 10) and loss.dim() == 0 and Q.grad is not None",
    "rb": "assert len(rb) == 1000",
}


def test_readme_keeps_its_examples():
    assert len(BLOCKS) >= 3, "the README lost its examples"


def _with_postconditions(block: str) -> str:
    checks = [check for name, check in POSTCONDITIONS.items() if re.search(rf"^{name} = ", block, flags=re.M)]
    return block + "\n" + "\n".join(checks) + "\n"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_example_runs_on_its_own(index):
    """Each block in a fresh interpreter: only its own imports are there."""
    result = subprocess.run(
        [sys.executable, "-c", _with_postconditions(BLOCKS[index])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"README python block {index} failed:\n{result.stderr[-2000:]}"


def test_postconditions_are_attached_to_some_block():
    attached = [name for name in POSTCONDITIONS if any(re.search(rf"^{name} = ", b, flags=re.M) for b in BLOCKS)]
    assert attached == list(POSTCONDITIONS)
