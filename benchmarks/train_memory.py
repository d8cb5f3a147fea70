"""How the training step's peak memory grows with the catalog, on each memory path of SASRecConfig.memory.

    python benchmarks/train_memory.py 250000 lean      # then 1000000, and "standard"

Builds the large model (dim 64, 2 layers, no side features) on a synthetic catalog of N items and runs three real
training steps (loss.backward(), clipping, AdamW) on random windows of 64 x 50; prints the peak resident memory
(VmHWM) above what the process held before the model. Run it at two catalog sizes: the slope, in units of one
N x D float32 table, is what each extra item costs (4 = the table, its gradient and AdamW's two moments).
"""

import sys

import torch
from torch import nn

from recengine.bench import rss_kib
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.config import SASRecConfig
from recengine.train.sasrec import training_optimizer


def main(num_items: int, memory: str, dim: int = 64, max_len: int = 50, batch: int = 64) -> float:
    base = rss_kib("VmRSS") / 1024
    torch.manual_seed(0)
    encoder = SequenceEncoder(num_items, dim, max_len, num_layers=2, num_heads=1, dropout=0.2)
    model = SequenceRecommender(encoder, CatalogHead(num_items, dim), use_users=False)
    opt = training_optimizer(model, SASRecConfig(memory=memory))
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randint(0, num_items, (batch, max_len), generator=g)
        y = torch.randint(0, num_items, (batch, max_len), generator=g)
        opt.zero_grad(set_to_none=True)
        model.loss(x, y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return rss_kib("VmHWM") / 1024 - base


if __name__ == "__main__":
    n, mode = int(sys.argv[1]), sys.argv[2]
    print(f"{n} items, memory={mode}: peak {main(n, mode):.0f} MiB above the process before the model")
