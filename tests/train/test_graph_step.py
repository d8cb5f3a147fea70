import torch

from recengine.train.graph_step import GraphStep


def test_graph_step_off_cuda_runs_every_call_eagerly_after_prepare():
    calls = []
    step = GraphStep(
        lambda: calls.append("step") or len(calls),
        torch.device("cpu"),
        capture=True,
        prepare=lambda: calls.append("prepare"),
    )
    step()
    step()
    assert calls == ["prepare", "step", "prepare", "step"]
    assert step.graph is None
