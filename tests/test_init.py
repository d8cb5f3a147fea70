"""The top-level package loads lazily: `import recengine` stays light, and its names still resolve."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_recengine_does_not_import_torch():
    assert _run("import sys, recengine; print('torch' in sys.modules)") == "False"


def test_top_level_names_still_resolve():
    import recengine

    assert recengine.TableSpec("item", 10, 4).num_rows == 10
    assert recengine.optim.RowwiseAdagrad(lr=0.1).lr == 0.1
    assert callable(recengine.ops.catalog_topk)


def test_unknown_attribute_is_an_attribute_error():
    import recengine

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recengine.nope  # noqa: B018
