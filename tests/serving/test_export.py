"""recengine.serving.export: the exported encoder (custom ops included) gives the recommendations eager gives."""

import pytest
import torch

from recengine.ops.policy import catalog_topk
from recengine.ops.quantized_tables import quantized_catalog_topk
from recengine.serving import Recommender
from recengine.serving.export import export_encoder
from recengine.serving.histories import context_windows, parse_histories

HISTORIES = [[1, 2, 3], list(range(40, 70)), [5], []]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_exported_encoder_recommends_what_eager_does(model_dir, dtype):
    rec = Recommender.load(model_dir, dtype=dtype)
    program = export_encoder(rec.encoder)
    batch = parse_histories(HISTORIES, rec.num_items)
    window, lengths, _ = context_windows(batch, rec.max_len)
    with torch.inference_mode():
        states = program.module()(window, lengths)
    table = rec.encoder.table
    kw = dict(bias=table.bias, exclude_offsets=batch.offsets, exclude_ids=batch.values)
    if dtype == "float32":
        _, items = catalog_topk(states, table.rows, 10, **kw)
    else:
        _, items = quantized_catalog_topk(states, table.rows, table.scale_bias, 10, **kw)
    assert torch.equal(items, rec.recommend(HISTORIES, k=10).items)


def test_exported_encoder_takes_other_batch_and_window_sizes(model_dir):
    rec = Recommender.load(model_dir, dtype="int8")
    program = export_encoder(rec.encoder).module()
    for histories in ([[7]], [list(range(i, i + 8)) for i in range(9)]):
        window, lengths, _ = context_windows(parse_histories(histories, rec.num_items), rec.max_len)
        with torch.inference_mode():
            assert torch.allclose(program(window, lengths), rec.encoder(window, lengths), atol=1e-5)
