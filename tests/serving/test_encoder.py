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


def test_bfloat16_compute_stays_close_to_float32():
    encoder, inference = _encoders(2)
    table = InferenceTable(encoder.item_embeddings().detach(), None, "float32")
    fast = InferenceEncoder(encoder, table, compute_dtype="bfloat16")
    assert fast.layers[0].qkv_weight_t.dtype == torch.bfloat16 and fast.layers[0].norm1_weight.dtype == torch.float32
    window = torch.randint(0, NUM_ITEMS, (8, 6))
    lengths = torch.tensor([6, 5, 4, 3, 2, 1, 6, 6])
    with torch.inference_mode():
        exact, approx = inference(window, lengths), fast(window, lengths)
    assert approx.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: relative error a few 1e-3 per matmul, through two layers
    assert torch.allclose(approx, exact, atol=0.05, rtol=0.05)
    assert not torch.equal(approx, exact)  # the bfloat16 path really ran


def test_unknown_compute_dtype_is_named():
    encoder, _ = _encoders(1)
    table = InferenceTable(encoder.item_embeddings().detach(), None, "float32")
    with pytest.raises(ValueError, match="compute_dtype"):
        InferenceEncoder(encoder, table, compute_dtype="float16")


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_pure_lookup_equals_the_lookup_op(dtype):
    encoder, _ = _encoders(1)
    table = InferenceTable(encoder.item_embeddings().detach(), None, dtype)
    inference = InferenceEncoder(encoder, table)
    window = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID, PAD_ID], [1, 2, 3, 4, 5, 6]])
    lengths = torch.tensor([3, 6])
    with torch.inference_mode():
        assert torch.allclose(inference(window, lengths, pure_lookup=True), inference(window, lengths), atol=1e-5)
