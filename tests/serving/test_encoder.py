"""recengine.serving.encoder: the inference encoder gives the training encoder's states."""

import pytest
import torch

from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.padding import PAD_ID
from recengine.serving.encoder import InferenceEncoder
from recengine.serving.item_table import InferenceTable

NUM_ITEMS = 50


def _encoders(num_layers: int) -> tuple[SequenceEncoder, InferenceEncoder]:
    with torch.random.fork_rng():  # the encoder draws its weights from the global generator: leave it as it was
        torch.manual_seed(0)
        encoder = SequenceEncoder(NUM_ITEMS, dim=16, max_len=6, num_layers=num_layers, num_heads=2).eval()
    with torch.no_grad():
        encoder.empty_state.copy_(torch.randn(16, generator=torch.Generator().manual_seed(1)))
    table = InferenceTable(encoder.item_embeddings().detach(), None, "float32")
    return encoder, InferenceEncoder(encoder, table)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_states_equal_the_training_encoders_last_states(num_layers):
    encoder, inference = _encoders(num_layers)
    pad = PAD_ID
    window = torch.tensor([[3, 4, 5, 6, 7, 8], [9, 10, pad, pad, pad, pad], [pad] * 6, [11] + [pad] * 5])
    lengths = (window >= 0).sum(1)
    with torch.inference_mode():
        expected = encoder.last_state(window)
        got = inference(window, lengths)
    assert torch.allclose(got, expected, atol=1e-5)


def test_padded_slots_do_not_change_a_rows_state():
    _, inference = _encoders(2)
    short = torch.tensor([[4, 5, 6]])
    padded = torch.tensor([[4, 5, 6, PAD_ID, PAD_ID, PAD_ID]])
    with torch.inference_mode():
        a = inference(short, torch.tensor([3]))
        b = inference(padded, torch.tensor([3]))
    assert torch.allclose(a, b, atol=1e-6)
