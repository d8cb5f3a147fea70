"""Recommender: a trained model loaded for inference, answering jagged batches of histories with top-k items.

    rec = Recommender.load("runs/sasrec", dtype="int8")            # a `recengine train` output dir or file
    items, scores = rec.recommend([[12, 7, 301], [5]], k=10)        # seen items excluded by default
    rec.recommend([[12, 7, 301]], k=10).truncated                   # which histories were cut to the context
    rec.recommend([["Heat (1995)"]], k=10, ids="raw").items         # your own ids in and out (list of lists)

Item ids are the model's 0-based indices by default; with ``ids="raw"`` histories and answers are in the raw ids
of the data the model was trained on (MovieID, title, ASIN: ``rec.vocabulary``, kept in its checkpoint).

One call runs the encoder over every user's most recent `max_len` items and the fused catalog top-k with each
user's history excluded: the B x N scores are never built. The item table is stored once in the chosen dtype
(float32, bfloat16 or row-wise int8) and read by both the encoder's input lookup and the top-k.

Threads: a Recommender holds no mutable state after load (every call allocates its own tensors, autograd is
off through torch.inference_mode, which is per thread), so many Python threads may share one; the kernels
release the GIL. It never changes process-wide settings (thread counts, wait policies): those belong to the
process that serves, see recengine.serving.threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from recengine.data.vocabulary import ItemVocabulary
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.ops.table_formats import TABLE_DTYPES
from recengine.serving.device import checked_device
from recengine.serving.encoder import InferenceEncoder
from recengine.serving.histories import context_windows, parse_histories
from recengine.serving.item_table import InferenceTable
from recengine.serving.loading import load_any


class Recommendations(tuple):
    """(items (B, k) int64, scores (B, k) float32), best first (items a list of B lists of raw ids when asked
    for raw ids); ``.truncated`` (B,) bool marks the histories
    longer than the model's context (only their most recent items were used)."""

    items: Tensor | list
    scores: Tensor
    truncated: Tensor

    def __new__(cls, items: Tensor | list, scores: Tensor, truncated: Tensor):
        self = super().__new__(cls, (items, scores))
        self.items, self.scores, self.truncated = items, scores, truncated
        return self


class Recommender:
    """A model ready to answer: the InferenceEncoder, its item table and the head's item bias.

    Build it with `load` (a checkpoint) or `from_modules` (an encoder and its catalog head in memory, e.g. an
    agent's scorer).
    """

    def __init__(
        self,
        encoder: InferenceEncoder,
        user_encoder: SequenceEncoder | None,
        device: torch.device,
        compiled: Callable[[Tensor, Tensor], Tensor] | None = None,
        vocabulary: ItemVocabulary | None = None,
    ):
        self.encoder = encoder
        #: the raw item ids in index order (from the checkpoint), or None: ``recommend(..., ids="raw")`` needs it
        self.vocabulary = vocabulary
        #: the encoder AOT-compiled (recengine.serving.compiled_encoder), or None: eager
        self.compiled = compiled
        self._user_encoder = user_encoder
        self.device = device
        self.num_items = encoder.table.num_items
        self.max_len = encoder.max_len
        self.dtype = encoder.table.dtype_name

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_modules(
        cls,
        encoder: SequenceEncoder,
        head: CatalogHead,
        *,
        use_users: bool = False,
        dtype: str = "float32",
        device: str | torch.device = "cpu",
        compute_dtype: str = "float32",
        compile: bool = False,
        cache_dir: str | os.PathLike | None = None,
        vocabulary: ItemVocabulary | None = None,
    ) -> Recommender:
        """Serve `encoder` with `head` (its own item table, or the encoder's tied one) in `dtype`;
        `compute_dtype`: the Transformer's arithmetic (InferenceEncoder); `compile`: run the encoder
        AOT-compiled (`recengine.serving.compiled_encoder`, its packages cached in `cache_dir`)."""
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"dtype: expected one of {TABLE_DTYPES}, got {dtype!r}")
        if not isinstance(compile, bool):
            raise TypeError(f"compile: expected a bool, got {type(compile).__name__}")
        device = checked_device(device)
        with torch.no_grad():
            table = head.weight if head.weight is not None else encoder.item_embeddings()
            items = InferenceTable(table, head.bias, dtype)
        # recommend validates every history before the encoder sees it
        inference = InferenceEncoder(encoder, items, ids_checked=True, compute_dtype=compute_dtype).to(device)
        user_encoder = encoder.eval().to(device) if use_users and encoder.user_tables is not None else None
        compiled = None
        if compile:
            from recengine.serving.compiled_encoder import compile_encoder

            compiled = compile_encoder(inference, cache_dir=cache_dir)
        if vocabulary is not None and len(vocabulary) != items.num_items:
            raise ValueError(f"vocabulary: {len(vocabulary)} raw ids for a catalog of {items.num_items} items")
        return cls(inference, user_encoder, device, compiled, vocabulary)

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike,
        *,
        dtype: str = "float32",
        device: str | torch.device = "cpu",
        compute_dtype: str = "float32",
        compile: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ) -> Recommender:
        """A Recommender from any checkpoint the project writes (recengine.serving.loading.load_any): what
        `recengine train` writes (its output directory, a model file or a training checkpoint: its best
        weights), the sharded checkpoint directory of a data-parallel run (recengine.distributed.model_checkpoint),
        an agent's scorer checkpoint (recengine.serving.agent_checkpoint) or a whole agent's file (its scorer).
        `dtype` stores the item table as "float32", "bfloat16" or "int8"; `compute_dtype` "bfloat16" runs the
        Transformer's matmuls in bfloat16 (recengine.serving.encoder.InferenceEncoder). `compile=True` runs the encoder
        AOT-compiled (the first load of a model compiles it, tens of seconds; later loads read the package
        from `cache_dir`, default the recengine cache); CPU only."""
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint: expected a path (str or os.PathLike), got {type(checkpoint).__name__}")
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"dtype: expected one of {TABLE_DTYPES}, got {dtype!r}")
        if not isinstance(compile, bool):
            raise TypeError(f"compile: expected a bool, got {type(compile).__name__}")
        checked_device(device)  # before the file is read
        loaded = load_any(checkpoint)
        encoder, head, use_users = loaded.serving_modules()
        return cls.from_modules(
            encoder,
            head,
            use_users=use_users,
            dtype=dtype,
            device=device,
            compute_dtype=compute_dtype,
            compile=compile,
            cache_dir=cache_dir,
            vocabulary=loaded.vocabulary(head.num_items),
        )

    # ---------------------------------------------------------------------------------------- serving
    def recommend(
        self,
        histories,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        user_features: Tensor | list[int] | None = None,
        ids: str = "index",
    ) -> Recommendations:
        """The k best items for each history (a list of id lists, oldest first, or (values, offsets)).

        `exclude_seen` drops every item of a user's history from their list. `user_features`: the users' ids
        (B,) into the model's user feature table, for a model trained with user features. `ids`: "index" (the
        model's 0-based item indices, in and out) or "raw" (histories as lists of raw ids, and ``items`` of the
        answer a list of lists of raw ids: the checkpoint's vocabulary).
        Raises TypeError / ValueError / IndexError naming the argument for bad input (KeyError naming an unknown
        raw id)."""
        if ids not in ("index", "raw"):
            raise ValueError(f"ids: expected 'index' or 'raw', got {ids!r}")
        if not isinstance(exclude_seen, bool):
            raise TypeError(f"exclude_seen: expected a bool, got {type(exclude_seen).__name__}")
        if ids == "raw":
            if self.vocabulary is None:
                raise ValueError("ids: 'raw' needs an item vocabulary, and this checkpoint was written without one")
            histories = self._raw_to_indices(histories)
        batch = parse_histories(histories, self.num_items)
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k: expected an int, got {type(k).__name__}")
        if not 1 <= k <= self.num_items:
            raise ValueError(f"k: expected 1..{self.num_items} (the catalog size), got {k}")
        window, lengths, truncated = context_windows(batch, self.max_len)
        with torch.inference_mode():
            user_vectors = self._user_vectors(user_features, batch.batch_size)
            if self.compiled is not None and user_vectors is None:
                states = self.compiled(window, lengths)
            else:
                states = self.encoder(window.to(self.device), lengths.to(self.device), user_vectors)
            if exclude_seen:
                ex_off, ex_ids = batch.offsets.to(self.device), batch.values.to(self.device)
            else:
                ex_off = ex_ids = None
            scores, items = self.encoder.table.topk(states, k, ex_off, ex_ids, checked=True)
        items = items.cpu()
        if ids == "raw":
            items = [self.vocabulary.raw(row) for row in items.tolist()]
        return Recommendations(items, scores.cpu(), truncated)

    def _raw_to_indices(self, histories) -> list[list[int]]:
        if isinstance(histories, (str, bytes)) or not isinstance(histories, (list, tuple)):
            raise TypeError(
                f"histories: with ids='raw', expected a list of lists of raw ids, got {type(histories).__name__}"
            )
        out = []
        for b, history in enumerate(histories):
            if isinstance(history, (str, bytes)) or not isinstance(history, (list, tuple)):
                raise TypeError(f"histories[{b}]: expected a list of raw ids, got {type(history).__name__}")
            out.append(self.vocabulary.indices(history))
        return out

    def _user_vectors(self, user_features, batch_size: int) -> Tensor | None:
        if user_features is None:
            return None
        if self._user_encoder is None:
            raise ValueError("user_features: this model was trained without user features")
        users = torch.as_tensor(user_features)
        if users.dtype not in (torch.int32, torch.int64) or users.shape != (batch_size,):
            raise TypeError(
                f"user_features: expected {batch_size} int user ids, got {users.dtype} {tuple(users.shape)}"
            )
        return self._user_encoder.user_vectors(users.to(self.device))
