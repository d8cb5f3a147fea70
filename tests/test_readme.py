"""The README's Python examples run as written (so the documentation stays true)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3, "the README lost its examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["pooled"].shape == (2, 128)
    assert namespace["ids"].shape == (4, 10) and namespace["loss"].dim() == 0
    assert namespace["Q"].grad is not None and len(namespace["rb"]) == 1000
