"""recengine.ops._triton: triton is optional. Without it, `import recengine` and every CPU op work, and only a
kernel module asked for (a CUDA tensor's path) fails, with an ImportError that says how to install it.

Each test runs in a fresh interpreter where a meta-path finder refuses to import triton, so the test means the
same whether or not triton is installed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TRITON = textwrap.dedent("""
    import importlib.abc, sys

    class BlockTriton(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "triton" or name.startswith("triton."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, BlockTriton())
""")


def _run_without_triton(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TRITON + textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cpu_ops_and_modules_work_without_triton():
    result = _run_without_triton("""
        import torch
        import recengine
        from recengine import ops
        from recengine.buffers import PrioritizedReplay
        from recengine.nn import CatalogHead, EmbeddingTables, TableSpec
        from recengine.optim import RowwiseAdagrad

        tables = EmbeddingTables([TableSpec("a", 5, 4), TableSpec("b", 3, 8)], optimizer=RowwiseAdagrad(lr=0.1))
        tables(torch.tensor([1, 2, 0]), torch.tensor([0, 2, 2, 3, 3])).sum().backward()
        Q, E = torch.randn(2, 4), torch.randn(10, 4)
        ops.catalog_topk(Q, E, 3)
        ops.catalog_sample(Q, E, 3, 1)
        ops.catalog_cross_entropy(Q.requires_grad_(), E, torch.tensor([1, 2])).backward()
        CatalogHead(10, 4, own_table=True).topk(torch.randn(2, 4), 2)
        ones = torch.ones(4)
        ops.td_loss(ones, ones, ones, torch.zeros(4), ones, ones)
        replay = PrioritizedReplay(8, {"reward": ((), torch.float32), "done": ((), torch.bool)})
        replay.add(reward=torch.ones(3), done=torch.zeros(3, dtype=torch.bool))
        replay.sample(2, 0.4)
        assert "triton" not in sys.modules, "triton was imported"
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_kernel_module_without_triton_says_how_to_install_it():
    result = _run_without_triton("""
        from recengine.ops._triton import triton_kernels
        try:
            triton_kernels("policy")
        except ImportError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install 'recengine[gpu]'" in result.stdout
    assert "policy" in result.stdout
