"""load_any: every checkpoint the project writes, told apart and read once.

    loaded = load_any("runs/sasrec")          # a run directory, a file, or a sharded model directory
    loaded.kind                               # "model", "training", "scorer", "agent" or "sharded"
    encoder, head, use_users = loaded.serving_modules()     # what Recommender.load serves, whatever the kind
    model, cfg = loaded.model()               # the large model (model, training and sharded checkpoints)
    agent = loaded.agent()                    # a whole agent (agent files), as recengine.agents.load_agent

What a path may be:

* a model file or a training checkpoint of `recengine train` (recengine.train.sasrec_checkpoint; a training
  checkpoint serves its best weights), an agent's scorer file (recengine.serving.agent_checkpoint) or a whole
  agent's file (recengine.agents.persistence): the file's metadata field "kind" tells which;
* a run directory: its first file of CHECKPOINT_FILES;
* the sharded model directory of a data-parallel run (recengine.distributed.model_checkpoint), consolidated in
  memory.

The file is read once (recengine.checkpoint.read: the untrusted-file checks), and each question is answered by
the loader of that kind from the tensors already read; every error is a CheckpointError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from recengine.checkpoint import AGENT_KIND, MODEL_KIND, SCORER_KIND, TRAINING_KIND, CheckpointError, kind_of, read
from recengine.data.vocabulary import METADATA_FIELD as VOCABULARY_FIELD
from recengine.data.vocabulary import ItemVocabulary
from recengine.distributed.model_checkpoint import DENSE, consolidate, is_sharded_model
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.serving.agent_checkpoint import scorer_from_checkpoint
from recengine.serving.preflight import PreflightError, checkpoint_file
from recengine.train.config import SASRecConfig
from recengine.train.sasrec_checkpoint import model_from_checkpoint

if TYPE_CHECKING:
    from recengine.agents.policy_base import Policy

SHARDED_KIND = "sharded"
"""the kind of a sharded model directory (a directory, not a file: recengine.distributed.model_checkpoint)"""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read once: its kind, tensors and metadata; its models are built on request."""

    path: str
    """the file read (for a sharded model, its directory)"""
    kind: str
    """"model", "training", "scorer", "agent" (recengine.checkpoint.KINDS) or "sharded" (SHARDED_KIND)"""
    tensors: dict[str, Tensor]
    metadata: dict[str, str]

    def _file(self) -> str:
        """The file errors name: the dense file of a sharded directory, the path itself otherwise."""
        if self.kind == SHARDED_KIND:
            return os.path.join(self.path, DENSE)
        return self.path

    def model(self) -> tuple[SequenceRecommender, SASRecConfig]:
        """(SequenceRecommender, SASRecConfig) of a model file, a training checkpoint (its best weights) or a
        sharded model; CheckpointError naming the file for another kind."""
        if self.kind not in (MODEL_KIND, TRAINING_KIND, SHARDED_KIND):
            raise CheckpointError(f"{self.path}: holds {self.kind!r}, not the large model")
        return model_from_checkpoint(self._file(), self.tensors, self.metadata)

    def scorer(self) -> tuple[SequenceEncoder, CatalogHead]:
        """(SequenceEncoder, CatalogHead) of a scorer or agent file, in eval mode with dropout off
        (recengine.serving.agent_checkpoint.load_scorer)."""
        return scorer_from_checkpoint(self.path, self.tensors, self.metadata)

    def agent(self) -> Policy:
        """The agent of an agent file, ready to act and to continue training (recengine.agents.load_agent)."""
        from recengine.agents.persistence import agent_from_checkpoint  # on first use: serving needs no agent code

        return agent_from_checkpoint(self.path, self.tensors, self.metadata)

    def vocabulary(self, num_items: int) -> ItemVocabulary | None:
        """The item vocabulary (raw ids in index order) the checkpoint carries, or None for a checkpoint written
        without one; CheckpointError naming the file when it is malformed or does not fit the `num_items` catalog."""
        text = self.metadata.get(VOCABULARY_FIELD)
        if text is None:
            return None
        try:
            return ItemVocabulary.from_json(text, num_items=num_items)
        except ValueError as exc:
            raise CheckpointError(f"{self._file()}: metadata field {VOCABULARY_FIELD!r}: {exc}") from None

    def serving_modules(self) -> tuple[SequenceEncoder, CatalogHead, bool]:
        """(SequenceEncoder, CatalogHead, use_users) to serve, whatever the kind: the large model (its user
        features when it has them) or an agent's scorer (no user features)."""
        if self.kind in (SCORER_KIND, AGENT_KIND):  # an agent file holds its scorer in the same layout
            encoder, head = self.scorer()
            return encoder, head, False
        model, _ = self.model()
        return model.encoder, model.head, model.use_users


def _checkpoint_file(path: str) -> str:
    """`path` itself, or the first of CHECKPOINT_FILES inside the directory `path` (CheckpointError if none)."""
    try:
        return checkpoint_file(path)
    except PreflightError as exc:
        raise CheckpointError(str(exc)) from None


def load_any(path: str | os.PathLike) -> LoadedCheckpoint:
    """The checkpoint at `path` (a file, a run directory or a sharded model directory), read once and its
    kind told apart; CheckpointError naming the file when it is missing, unreadable or of an unknown kind."""
    path = os.fspath(path)
    if os.path.isdir(path) and is_sharded_model(path):  # written by a data-parallel run
        tensors, meta = consolidate(path)
        return LoadedCheckpoint(path, SHARDED_KIND, tensors, meta)
    path = _checkpoint_file(path)
    tensors, meta = read(path)
    return LoadedCheckpoint(path, kind_of(meta), tensors, meta)
