"""SequenceEncoder: the "large model", a causal (SASRec-style) Transformer over a user's item history.

Conventions (shared with recengine.data and the agents):

* item ids are 0-based, ``0 .. num_items-1``; ``PAD_ID`` (-1, recengine.padding) marks an empty slot;
* ``items`` is (B, L) int64; the usual layout is LEFT-aligned (oldest item in slot 0, PAD_ID after the last
  item), which is what recengine.data produces. Any other placement of PAD_ID (e.g. right-aligned,
  most-recent-last histories) is accepted too: the real items of a row are taken in slot order and the
  states are returned in the slots they came from, so the result does not depend on where the PADs are;
* position p of a row is its p-th real item (0 = oldest in the window); L <= max_len in ``forward``.

What goes in at each real position: the item's vector ``item_embeddings()[item]`` (the learned id embedding
plus a projection of the item's side features, pooled through ``EmbeddingTables``), plus a learned position
embedding, plus (optionally) a projection of the user's features, then LayerNorm and dropout. The Transformer is
causal: the state at position p depends on positions 0..p only (a later item never changes an earlier state).

The item table the catalog head scores against is TIED to the input embeddings: ``item_embeddings()`` (N, D)
is recomputed from the parameters on every call (it carries gradients), so use it as
``CatalogHead.loss(states, targets, encoder.item_embeddings())``.

    states = encoder(items, users=None)          # (B, L, D): one state per slot (training over all positions)
    q = encoder.last_state(items, users=None)    # (B, D): the state after each row's most recent item
    scores, ids = head.topk(q, 10, encoder.item_embeddings(), exclude_offsets=..., exclude_ids=...)

A row with no item at all gets the learned ``empty_state`` (supervised next-item training never reaches it: it
starts at zero, plus the user's feature vector when users are given; RL fine-tuning can train it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from recengine.nn.gather_rows import gather_rows
from recengine.ops._checks import check_number
from recengine.ops.checked_ids import checked_ids


class SequenceEncoder(nn.Module):
    """Causal Transformer over item histories: (B, L) item ids -> (B, L, dim) states.

    Args:
        num_items: N; item ids are 0..N-1 (PAD_ID = -1 is an empty slot).
        dim: state and item-vector width D.
        max_len: the longest window (positions 0..max_len-1). `last_state` keeps the most recent max_len items.
        num_layers, num_heads, dropout: Transformer size (pre-norm layers, GELU, feed-forward 2*dim wide).
        item_feature_tables: [(name, num_rows)] of the item side-feature tables (e.g. genre, year bucket).
        item_feature_ids, item_feature_offsets: ALL items' features as one jagged batch for those tables,
            table-major (bag of item i in table t is ``ids[offsets[t*N+i]:offsets[t*N+i+1]]``), as built by
            ``recengine.data.item_feature_bags``.
        user_feature_tables: [(name, num_rows)] of the user feature tables (e.g. age, gender, occupation).
        user_feature_ids: (num_users, T) int64, one id per user per table; then ``users=`` in forward adds the
            user's feature vector to every position (and to the empty-history state).
        feature_dim: width of each side-feature table (projected to dim).
        item_text_vocab_size, item_text_ids, item_text_offsets, item_text_weights: the items' text as weighted
            bags of words (V tokens; bag of item i is ``ids[offsets[i]:offsets[i+1]]``, offsets (N+1,), with one
            float weight per id, e.g. TF-IDF from ``recengine.data.item_text``): learned token embeddings
            (feature_dim wide) sum-pooled with the weights as per-sample weights, projected to dim and added
            to the item vector.
        item_text_vectors: (N, E) frozen text embeddings of the items (e.g. a sentence encoder's, from
            ``recengine.nn.text_encoder``): a learned linear projection of them is added to the item vector.
        id_dropout: item-id dropout (the DropoutNet idea), in [0, 1): in training mode every call of
            `item_embeddings` zeroes the id-embedding row of each item with this probability (a fresh Bernoulli
            mask over the N items per call, drawn from torch's global generator, no rescaling), so a dropped item
            looks exactly like an item never seen in training (whose id vector is zero at serving) and its side
            features and text must carry it alone. 0 (the default) draws nothing; eval mode never drops.
    """

    def __init__(
        self,
        num_items: int,
        dim: int = 64,
        max_len: int = 50,
        *,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.2,
        item_feature_tables: Sequence[tuple[str, int]] = (),
        item_feature_ids=None,
        item_feature_offsets=None,
        user_feature_tables: Sequence[tuple[str, int]] = (),
        user_feature_ids=None,
        feature_dim: int = 16,
        item_text_vocab_size: int = 0,
        item_text_ids=None,
        item_text_offsets=None,
        item_text_weights=None,
        item_text_vectors=None,
        id_dropout: float = 0.0,
    ):
        super().__init__()
        if num_items < 1 or dim < 1 or max_len < 1:
            raise ValueError(f"num_items, dim, max_len must be >= 1, got {num_items}, {dim}, {max_len}")
        if check_number("id_dropout", id_dropout, minimum=0.0) >= 1.0:
            raise ValueError(f"id_dropout: must be < 1 (1 would drop every id vector), got {id_dropout}")
        #: probability of zeroing an item's id vector in a training-mode call of item_embeddings
        self.id_dropout = float(id_dropout)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_items, self.dim, self.max_len = num_items, dim, max_len
        self.sparse_input_grad = False
        """True: the history lookup of the item-id table gives a sparse gradient (a trainer sets it when a dense
        gradient of the whole table arrives anyway, from the tied catalog loss, to add it to that one in place
        instead of allocating a second N x D); used only when the table is the parameter itself (no side
        features, no id dropout)"""
        self.item_embedding = nn.Parameter(torch.randn(num_items, dim) * dim**-0.5)
        self.position_embedding = nn.Parameter(torch.randn(max_len, dim) * dim**-0.5)
        #: the state of a user with no history (used by last_state for empty rows)
        self.empty_state = nn.Parameter(torch.zeros(dim))

        self.item_tables = self.item_projection = None
        if item_feature_tables:
            if item_feature_ids is None or item_feature_offsets is None:
                raise ValueError("item_feature_tables given without item_feature_ids / item_feature_offsets")
            t = len(item_feature_tables)
            offsets = torch.as_tensor(item_feature_offsets, dtype=torch.int64)
            if offsets.shape != (t * num_items + 1,):
                raise ValueError(
                    f"item_feature_offsets: expected shape ({t * num_items + 1},), got {tuple(offsets.shape)}"
                )
            self.item_tables = EmbeddingTables(
                [TableSpec(n, int(r), feature_dim) for n, r in item_feature_tables], pooling="mean"
            )
            self.item_projection = nn.Linear(t * feature_dim, dim, bias=False)
            self.register_buffer("item_feature_ids", torch.as_tensor(item_feature_ids, dtype=torch.int64).clone())
            self.register_buffer("item_feature_offsets", offsets.clone())

        self.text_tables = self.text_projection = None
        if item_text_vocab_size:
            self._init_text_bags(item_text_vocab_size, item_text_ids, item_text_offsets, item_text_weights, feature_dim)
        self.text_vector_projection = None
        if item_text_vectors is not None:
            vectors = torch.as_tensor(item_text_vectors, dtype=torch.float32)
            if vectors.dim() != 2 or vectors.shape[0] != num_items:
                raise ValueError(f"item_text_vectors: expected shape ({num_items}, E), got {tuple(vectors.shape)}")
            self.text_vector_projection = nn.Linear(vectors.shape[1], dim, bias=False)
            self.register_buffer("item_text_vectors", vectors.clone())

        self.user_tables = self.user_projection = None
        if user_feature_tables:
            if user_feature_ids is None:
                raise ValueError("user_feature_tables given without user_feature_ids")
            ids = torch.as_tensor(user_feature_ids, dtype=torch.int64)
            if ids.dim() != 2 or ids.shape[1] != len(user_feature_tables):
                raise ValueError(
                    f"user_feature_ids: expected shape (num_users, {len(user_feature_tables)}), got {tuple(ids.shape)}"
                )
            self.user_tables = EmbeddingTables([TableSpec(n, int(r), feature_dim) for n, r in user_feature_tables])
            self.user_projection = nn.Linear(len(user_feature_tables) * feature_dim, dim, bias=False)
            self.register_buffer("user_feature_ids", ids.clone())

        self.input_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=2 * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # no dropout on the attention weights: it would force the slow unfused attention path (dropout still
        # applies to the attention output, the feed-forward block and the input)
        layer.self_attn.dropout = 0.0
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.output_norm = nn.LayerNorm(dim)

    def _init_text_bags(self, vocab_size: int, ids, offsets, weights, feature_dim: int) -> None:
        """The weighted bag-of-words table of the items' text (see item_text_* in the class doc)."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"item_text_vocab_size: expected an int >= 1, got {vocab_size!r}")
        if ids is None or offsets is None or weights is None:
            raise ValueError("item_text_vocab_size given without item_text_ids / item_text_offsets / item_text_weights")
        ids = torch.as_tensor(ids, dtype=torch.int64)
        offsets = torch.as_tensor(offsets, dtype=torch.int64)
        weights = torch.as_tensor(weights, dtype=torch.float32)
        if offsets.shape != (self.num_items + 1,):
            raise ValueError(f"item_text_offsets: expected shape ({self.num_items + 1},), got {tuple(offsets.shape)}")
        if weights.shape != ids.shape or ids.dim() != 1:
            raise ValueError(
                f"item_text_weights: expected one weight per id, shape {tuple(ids.shape)}, got {tuple(weights.shape)}"
            )
        self.text_tables = EmbeddingTables([TableSpec("text", vocab_size, feature_dim)], pooling="sum")
        self.text_projection = nn.Linear(feature_dim, self.dim, bias=False)
        self.register_buffer("item_text_ids", ids.clone())
        self.register_buffer("item_text_offsets", offsets.clone())
        self.register_buffer("item_text_weights", weights.clone())

    # ------------------------------------------------------------------------------------ tables
    def draw_id_mask(self) -> torch.Tensor | None:
        """(N,) bool, the items whose id vector a training step keeps (each dropped with probability
        ``id_dropout``, torch's global generator); None in eval mode or without id dropout."""
        if not (self.training and self.id_dropout > 0):
            return None
        return torch.rand(self.num_items, device=self.item_embedding.device) >= self.id_dropout

    def item_embeddings(self, kept: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D): every item's vector (id embedding + projected side features and text); the tied catalog
        table. `kept` (N,) bool zeroes the id embedding of the items it marks False, so their vectors are what a
        cold item's is; by default a training-mode call with ``id_dropout`` > 0 draws it (``draw_id_mask``)."""
        table = self.item_embedding
        kept = self.draw_id_mask() if kept is None else kept
        if kept is not None:
            if kept.shape != (self.num_items,) or kept.dtype != torch.bool:
                raise ValueError(f"kept: expected a ({self.num_items},) bool tensor, got {tuple(kept.shape)}")
            table = table * kept.unsqueeze(1)
        if self.item_tables is not None:
            pooled = self.item_tables(self.item_feature_ids, self.item_feature_offsets)
            table = table + self.item_projection(pooled)
        if self.text_tables is not None:
            pooled = self.text_tables(self.item_text_ids, self.item_text_offsets, self.item_text_weights)
            table = table + self.text_projection(pooled)
        if self.text_vector_projection is not None:
            table = table + self.text_vector_projection(self.item_text_vectors)
        return table

    def plain_item_table(self) -> torch.Tensor | None:
        """The item-id parameter when it is the whole item table (no side features, no text, no id dropout in
        training), else None."""
        if self.item_tables is not None or self.text_tables is not None or self.text_vector_projection is not None:
            return None
        if self.training and self.id_dropout > 0:
            return None
        return self.item_embedding

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B, D): the projected feature vector of each user id in `users` (B,)."""
        if self.user_tables is None:
            raise ValueError("users: this encoder was built without user features")
        users = torch.as_tensor(users, device=self.user_feature_ids.device)
        rows = checked_ids(users, self.user_feature_ids.shape[0], name="users")
        ids = self.user_feature_ids[rows].T.contiguous().view(-1)  # table-major, one id per bag
        offsets = torch.arange(ids.numel() + 1, dtype=torch.int64, device=ids.device)
        return self.user_projection(self.user_tables(ids, offsets))

    # ----------------------------------------------------------------------------------- forward
    def _check_items(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, valid) of a (B, L) history: the row of each slot in the item table (0 at PAD_ID slots) and
        whether the slot holds an item. The range check runs inside an op, so it holds when compiled or exported."""
        if not isinstance(items, torch.Tensor):
            items = torch.as_tensor(items)
        if items.dtype not in (torch.int32, torch.int64) or items.dim() != 2:
            raise TypeError(f"items: expected a (B, L) int32/int64 tensor, got {items.dtype} {tuple(items.shape)}")
        return checked_ids(items, self.num_items, name="items", allow_pad=True), items >= 0

    @staticmethod
    def _left_aligned_order(valid: torch.Tensor) -> torch.Tensor:
        """(B, L) slot permutation that moves each row's real items to the front, in slot order (stable)."""
        b, length = valid.shape
        slot = torch.arange(length, device=valid.device).expand(b, length)
        return torch.argsort(torch.where(valid, slot, slot + length), dim=1)

    def _encode(self, ids: torch.Tensor, valid: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        """States (B, L, D) of LEFT-aligned checked ids (`valid` marks the real slots)."""
        length = ids.shape[1]
        table = self.item_embeddings()
        if self.sparse_input_grad and table is self.plain_item_table() and torch.is_grad_enabled():
            x = nn.functional.embedding(ids, table, sparse=True) * valid.unsqueeze(-1)
        else:
            x = gather_rows(table, ids) * valid.unsqueeze(-1)
        x = x + self.position_embedding[:length]
        if users is not None:
            x = x + self.user_vectors(users).unsqueeze(1)
        x = self.dropout(self.input_norm(x))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        x = self.transformer(x, mask=mask, is_causal=True)
        return self.output_norm(x)

    def forward(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """States (B, L, D) for item histories `items` (B, L), L <= max_len: state [b, j] summarises the real
        items of row b up to and including slot j (causal). States at PAD_ID slots are meaningless.
        `users` (B,) int64 adds the users' feature vectors (encoder built with user features).

        Each row's real items are moved to the front (a no-op permutation for left-aligned rows), encoded, and
        the states moved back to their slots: no branch depends on the data, so the method compiles whole."""
        ids, valid = self._check_items(items)
        b, length = ids.shape
        if length > self.max_len:
            raise ValueError(f"items: {length} slots > max_len {self.max_len}; use last_state for long histories")
        order = self._left_aligned_order(valid)
        states = self._encode(torch.gather(ids, 1, order), torch.gather(valid, 1, order), users)
        return torch.empty_like(states).scatter_(1, order.unsqueeze(-1).expand_as(states), states)

    def _window_width(self, lengths: torch.Tensor, slots: int) -> int:
        """How many slots last_state encodes: under torch.compile / torch.export a width that depends only on
        the shapes (min(slots, max_len)); in eager mode the longest row's length (capped at max_len), which
        gives the same states (trailing PAD_ID slots never reach a real item's state: the attention is causal)
        at a fraction of the cost when histories are short."""
        if torch.compiler.is_compiling():
            return max(1, min(slots, self.max_len))
        return max(1, min(int(lengths.max()) if lengths.numel() else 1, self.max_len))

    def last_state(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D): each row's state after its most recent real item (the user state q_s for scoring).

        Any history length and PAD_ID placement: the most recent max_len real items are used. Rows without
        items get ``empty_state`` (plus the user's feature vector when `users` is given)."""
        ids, valid = self._check_items(items)
        b, length = ids.shape
        order = self._left_aligned_order(valid)
        packed = torch.gather(ids, 1, order)  # left-aligned
        lengths = valid.sum(1)
        width = self._window_width(lengths, length)
        start = (lengths - width).clamp(min=0)
        cols = (start.unsqueeze(1) + torch.arange(width, device=ids.device)).clamp(max=max(length - 1, 0))
        window = torch.gather(packed, 1, cols) if length else ids.new_zeros(b, 1)
        in_window = torch.arange(width, device=ids.device) < lengths.clamp(max=width).unsqueeze(1)
        states = self._encode(torch.where(in_window, window, torch.zeros_like(window)), in_window, users)
        last = (lengths.clamp(max=width) - 1).clamp(min=0)
        out = states[torch.arange(b, device=ids.device), last]
        empty = self.empty_state.expand(b, self.dim)
        if users is not None:
            empty = empty + self.user_vectors(users)
        return torch.where((lengths > 0).unsqueeze(1), out, empty)


ENCODER_SIZES = ("dim", "max_len", "num_layers", "num_heads", "dropout")
"""the sizes every encoder config has: the large model's SASRecConfig, an agent's EncoderConfig and the
"encoder" metadata of a scorer checkpoint (recengine.nn.persistence)"""
OPTIONAL_SIZES = {"feature_dim": 16, "id_dropout": 0.0}
"""the sizes a config may lack, and the value of each then (SequenceEncoder's own defaults)"""


def encoder_from_config(num_items: int, cfg: object, **kwargs) -> SequenceEncoder:
    """A SequenceEncoder over `num_items` items with the sizes of `cfg`: a config object or a dict (parsed
    metadata) holding ENCODER_SIZES and, optionally, OPTIONAL_SIZES; `kwargs` are further SequenceEncoder
    keywords (the side-feature tables and item text) and override a size of `cfg`. The one place a config
    becomes an encoder, so the trainer, the agents and the checkpoint readers build the same model from the
    same settings. A missing required size raises KeyError (dict) or AttributeError (object)."""
    mapping = isinstance(cfg, Mapping)
    sizes = {}
    for name in ENCODER_SIZES:
        if name not in kwargs:
            sizes[name] = cfg[name] if mapping else getattr(cfg, name)
    for name, default in OPTIONAL_SIZES.items():
        if name not in kwargs:
            sizes[name] = cfg.get(name, default) if mapping else getattr(cfg, name, default)
    sizes.update(kwargs)
    return SequenceEncoder(num_items, sizes.pop("dim"), sizes.pop("max_len"), **sizes)
