"""InferenceEncoder: the large model's encoder for serving, reading its items from an InferenceTable.

Training recomputes the item table (id embedding + projected side features) on every call, because it
carries gradients; serving computes it once, stores it as an InferenceTable (float32, bfloat16 or int8) and
keeps only what a forward needs: the table, the position embeddings, each Transformer layer's weights laid out
for the matmuls that use them, and the norms. The math is SequenceEncoder's in eval mode (pre-norm layers,
GELU feed-forward): item vector + position embedding (+ the user's feature vector), LayerNorm, the causal
Transformer, LayerNorm, read at each row's most recent item; a row without items gets the learned empty state.

What it leaves out, because no answer reads it:

* padded slots need no masking: the items are left-aligned and attention is causal, so a real slot never
  attends to a later (padded) one; every layer but the last uses the fused causal attention kernel
  (``F.scaled_dot_product_attention(is_causal=True)``) with no mask tensor at all;
* the last layer runs its query, attention row and feed-forward for each row's last real slot only (its keys
  and values for every slot up to it): one state per row is read;
* no dropout, no autograd, no per-call weight transposes (the weights are stored transposed for ``addmm``).

Every step is a tensor op (no Python loop over rows, no data-dependent branch), so the module traces under
torch.export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.serving.item_table import InferenceTable

#: the arithmetic the serving encoder's Transformer may run in
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class InferenceLayer(nn.Module):
    """One pre-norm Transformer encoder layer (self-attention, then a GELU feed-forward), weights only.

    Buffers hold the weights of a trained ``nn.TransformerEncoderLayer`` (norm_first, GELU), the projections
    transposed to (in, out) so each one is a single ``addmm``. `compute_dtype` bfloat16 stores the projections
    in bfloat16 and runs the matmuls and the attention in it (float32 accumulation inside the kernels); the
    norms, the residual stream and the output stay float32."""

    def __init__(self, layer: nn.TransformerEncoderLayer, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        if not layer.norm_first:
            raise ValueError("layer: serving expects pre-norm (norm_first=True) Transformer layers")
        attn = layer.self_attn
        self.heads, self.dim = attn.num_heads, attn.embed_dim
        self.eps1, self.eps2 = layer.norm1.eps, layer.norm2.eps
        weights = {
            "norm1_weight": layer.norm1.weight,
            "norm1_bias": layer.norm1.bias,
            "qkv_weight_t": attn.in_proj_weight.t(),
            "qkv_bias": attn.in_proj_bias,
            "out_weight_t": attn.out_proj.weight.t(),
            "out_bias": attn.out_proj.bias,
            "norm2_weight": layer.norm2.weight,
            "norm2_bias": layer.norm2.bias,
            "ff1_weight_t": layer.linear1.weight.t(),
            "ff1_bias": layer.linear1.bias,
            "ff2_weight_t": layer.linear2.weight.t(),
            "ff2_bias": layer.linear2.bias,
        }
        for name, value in weights.items():
            # the projections (and their biases) in the compute dtype; the norms stay float32
            dtype = torch.float32 if name.startswith("norm") else compute_dtype
            self.register_buffer(name, value.detach().to(dtype).contiguous().clone())

    @staticmethod
    def _linear(x: Tensor, bias: Tensor, weight_t: Tensor) -> Tensor:
        """x @ weight_t + bias in the weights' dtype (x cast to it: a no-op for float32)."""
        return torch.addmm(bias, x.to(weight_t.dtype), weight_t)

    def _feed_forward(self, x: Tensor) -> Tensor:
        """x + FF(LayerNorm(x)) for (M, D) rows."""
        h = F.layer_norm(x, (self.dim,), self.norm2_weight, self.norm2_bias, self.eps2)
        h = F.gelu(self._linear(h, self.ff1_bias, self.ff1_weight_t))
        return self._linear(h, self.ff2_bias, self.ff2_weight_t).float().add_(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, L, D), causal over the slots."""
        b, length, d = x.shape
        rows = x.reshape(b * length, d)
        h = F.layer_norm(rows, (d,), self.norm1_weight, self.norm1_bias, self.eps1)
        qkv = self._linear(h, self.qkv_bias, self.qkv_weight_t).view(b, length, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b * length, d)
        rows = self._linear(attended, self.out_bias, self.out_weight_t).float().add_(rows)
        return self._feed_forward(rows).view(b, length, d)

    def last_slot(self, x: Tensor, last: Tensor) -> Tensor:
        """(B, D): the layer's output at slot ``last[b]`` of each row of x (B, L, D) only. With the items
        left-aligned, that slot's causal mask is "every slot up to it"."""
        b, length, d = x.shape
        heads, head_dim = self.heads, d // self.heads
        h = F.layer_norm(x, (d,), self.norm1_weight, self.norm1_bias, self.eps1)
        rows = torch.arange(b, device=x.device)
        h_last = h[rows, last]
        q = self._linear(h_last, self.qkv_bias[:d], self.qkv_weight_t[:, :d]).view(b, 1, heads, head_dim)
        kv = self._linear(h.reshape(b * length, d), self.qkv_bias[d:], self.qkv_weight_t[:, d:])
        k, v = kv.view(b, length, 2, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        allowed = (torch.arange(length, device=x.device).unsqueeze(0) <= last.unsqueeze(1)).view(b, 1, 1, length)
        attended = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=allowed).reshape(b, d)
        y = self._linear(attended, self.out_bias, self.out_weight_t).float().add_(x[rows, last])
        return self._feed_forward(y)


class InferenceEncoder(nn.Module):
    """forward(window (B, L) int64, lengths (B,) int64, user_vectors (B, D) or None) -> states (B, D).

    `window` holds each row's most recent items left-aligned (oldest first, PAD_ID after the last), L <= the
    model's max_len; `lengths` counts the real items of each row (0 = empty history). `ids_checked`: the
    caller guarantees every id of a window lies in the catalog (or is PAD_ID), so the lookup skips its checks.
    `compute_dtype`: "float32" (the trained model's arithmetic) or "bfloat16" (the Transformer's matmuls and
    attention in bfloat16, several times faster where the CPU multiplies bfloat16 natively, AVX512-BF16 / AMX;
    the answers move slightly, which recengine bench serving measures as top-10 overlap and NDCG).
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        table: InferenceTable,
        *,
        ids_checked: bool = False,
        compute_dtype: str = "float32",
    ):
        super().__init__()
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype: expected one of {tuple(COMPUTE_DTYPES)}, got {compute_dtype!r}")
        self.compute_dtype = compute_dtype
        self.table = table
        self.max_len, self.dim = encoder.max_len, encoder.dim
        self.register_buffer("position_embedding", encoder.position_embedding.detach().clone())
        self.register_buffer("empty_state", encoder.empty_state.detach().clone())
        self.input_norm, self.output_norm = encoder.input_norm, encoder.output_norm
        dtype = COMPUTE_DTYPES[compute_dtype]
        self.layers = nn.ModuleList(InferenceLayer(layer, dtype) for layer in encoder.transformer.layers)
        self.final_norm = encoder.transformer.norm
        #: the caller validates the window's ids (the Recommender does): skip the lookup op's own checks
        self.ids_checked = ids_checked
        self.eval()

    def forward(
        self, window: Tensor, lengths: Tensor, user_vectors: Tensor | None = None, *, pure_lookup: bool = False
    ) -> Tensor:
        """`pure_lookup=True` reads the table with tensor ops only (what an ahead-of-time compiler compiles,
        recengine.serving.compiled_encoder) instead of the pooled-lookup op."""
        b, length = window.shape
        # a padded slot reads item 0: causal attention keeps it from every real slot, so it needs no zeroing
        items = window.clamp(min=0).reshape(-1)
        x = self.table.lookup(items, checked=self.ids_checked, pure=pure_lookup).view(b, length, self.dim)
        x = x + self.position_embedding[:length]
        if user_vectors is not None:
            x = x + user_vectors.unsqueeze(1)
        x = self.input_norm(x)
        for layer in self.layers[:-1]:
            x = layer(x)
        out = self.layers[-1].last_slot(x, (lengths - 1).clamp(min=0))
        if self.final_norm is not None:
            out = self.final_norm(out)
        out = self.output_norm(out)
        empty = self.empty_state.expand(b, self.dim)
        if user_vectors is not None:
            empty = empty + user_vectors
        return torch.where((lengths > 0).unsqueeze(1), out, empty)
