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


def test_the_names_a_user_needs_first_import_from_the_top():
    code = (
        "from recengine import EmbeddingTables, Recommender, SASRecConfig, load_dataset, train_sasrec\n"
        "from recengine.serving.recommender import Recommender as R\n"
        "from recengine.train import SASRecConfig as C, train_sasrec as t\n"
        "from recengine.data import load_dataset as d\n"
        "from recengine.nn import EmbeddingTables as E\n"
        "print(Recommender is R and SASRecConfig is C and train_sasrec is t and load_dataset is d"
        " and E is EmbeddingTables)"
    )
    assert _run(code) == "True"


def test_every_public_name_resolves_and_is_listed():
    import recengine

    missing = [name for name in recengine.__all__ if getattr(recengine, name, None) is None]
    assert not missing
    assert set(recengine.__all__) <= set(dir(recengine))
    assert recengine.__version__ == recengine._version.__version__
