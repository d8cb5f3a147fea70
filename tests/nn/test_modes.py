"""eval_mode restores the module's mode; disable_dropout silences every dropout."""

import pytest
import torch
from torch import nn

from recengine.nn import SequenceEncoder, disable_dropout, eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_previous_mode(training):
    module = nn.Dropout(0.5).train(training)
    with eval_mode(module):
        assert not module.training
    assert module.training is training


def test_eval_mode_restores_the_mode_after_an_exception():
    module = nn.Dropout(0.5).train()
    with pytest.raises(RuntimeError), eval_mode(module):
        raise RuntimeError("inside")
    assert module.training


def test_disable_dropout_makes_training_mode_deterministic():
    enc = disable_dropout(SequenceEncoder(10, dim=8, max_len=4, num_layers=1, num_heads=2, dropout=0.5)).train()
    items = torch.tensor([[1, 2, 3]])
    assert torch.equal(enc(items), enc(items))
