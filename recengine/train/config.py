"""SASRecConfig: the large model's sizes and its supervised training settings, in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from recengine.ops._checks import check_int, check_number

ITEM_TEXT_CHOICES = ("none", "tfidf", "minilm")
"""the item text features the large model can use (SASRecConfig.item_text)"""
LR_SCHEDULES = ("constant", "cosine")
"""the learning-rate schedules of SASRecConfig.lr_schedule"""
MEMORY_MODES = ("auto", "lean", "standard")
"""how SASRecConfig.memory trades memory for bit-for-bit continuity with earlier runs"""
LEAN_MIN_ITEMS = 100_000
"""memory="auto" trains lean from this many items on (smaller catalogs keep the standard path)"""
_POSITIVE_INTS = ("dim", "max_len", "num_layers", "num_heads", "feature_dim", "batch_size", "max_epochs", "patience")


@dataclass
class SASRecConfig:
    """Model and training settings; the defaults are tuned for ml-100k on a 2-core CPU."""

    dim: int = 64
    """state / item-vector width"""
    max_len: int = 50
    """window length (positions); longer histories are cut into windows of this length"""
    stride: int | None = None
    """step between the ends of consecutive training windows of one user (default: max_len, no overlap)"""
    num_layers: int = 2
    """Transformer blocks"""
    num_heads: int = 2
    """attention heads per block"""
    dropout: float = 0.3
    """dropout on the inputs, the attention output and the feed-forward block"""
    id_dropout: float = 0.0
    """item-id dropout in [0, 1): in each training step every item's id vector is zeroed with this probability
    (SequenceEncoder's id_dropout), so side features and text learn to stand for an item alone, as they must for
    an item never seen in training; 0 keeps training exactly as without it (no random draw)"""
    item_features: bool = True
    """genres + year bucket through EmbeddingTables, added to the item-id embedding"""
    item_text: str = "none"
    """item text features added to the item vector: "none", "tfidf" (TF-IDF weighted bag of title words, learned
    token embeddings) or "minilm" (frozen all-MiniLM-L6-v2 sentence embeddings, projected; the [text] extra)"""
    user_features: bool = False
    """age / gender / occupation through EmbeddingTables, added at every position"""
    feature_dim: int = 16
    """width of each side-feature table (projected to dim)"""
    item_init_std: float | None = None
    """standard deviation of the item-id embedding at initialisation (None: dim**-0.5, SequenceEncoder's own);
    a smaller one (RecBole's and SASRec+'s 0.02) starts every item's score near zero, so an item seen a few
    times in training is not ranked by its random start"""
    lr: float = 2e-3
    """AdamW learning rate"""
    lr_schedule: str = "constant"
    """"constant", or "cosine": decayed from `lr` to 0 along a cosine over `max_epochs` epochs (step by step), so
    a run's budget is its number of epochs"""
    label_smoothing: float = 0.0
    """ε in [0, 1) of the catalog cross-entropy: (1 - ε) on the next item, ε spread over the whole catalog
    (CatalogHead.loss); 0 is the plain cross-entropy"""
    weight_decay: float = 0.05
    """AdamW weight decay of the weight matrices (embeddings and biases are not decayed)"""
    batch_size: int = 32
    """training windows per gradient step"""
    length_buckets: bool = True
    """batches of windows of similar length (little padding to compute; a token of a short-history batch then
    weighs more in its batch's mean loss than one of a long-history batch); False: uniformly shuffled batches"""
    clip: float = 1.0
    """gradient-norm clip (0 = none)"""
    train_on_valid: bool = False
    """the final fit: train on each user's items up to the test target, the validation item included, for exactly
    `max_epochs` epochs and keep the last weights (no early stopping: the validation figures it logs are then
    of a training target, not held out). For after the settings and the number of epochs were chosen on the
    validation split; the test target stays unseen"""
    max_epochs: int = 200
    """stop after this many epochs"""
    patience: int = 10
    """stop after this many epochs without a better validation NDCG@10"""
    max_seconds: float = 600.0
    """stop after this many seconds of training (checked after each epoch)"""
    seed: int = 0
    """seed of the initialisation and of the batch order"""
    memory: str = "auto"
    """"lean": fused AdamW (no N x D temporary in the step) and a sparse gradient for the history lookup of the
    item table (added in place to the catalog loss's dense one), so peak memory grows with the catalog only by
    the table, its gradient and AdamW's moments (and the best weights kept for early stopping); "standard": the
    plain foreach AdamW and dense lookup gradient (about two more N x D float32 copies at peak); the two differ
    only in the order of float rounding. "auto": lean from ``LEAN_MIN_ITEMS`` items on, where the copies
    matter, so runs on smaller catalogs reproduce earlier figures bit for bit"""

    def __post_init__(self):
        """Every setting checked at construction (TypeError/ValueError naming it), so a bad value from the
        command line or a tampered checkpoint fails before any data is loaded or any tensor allocated."""
        for name in _POSITIVE_INTS:
            check_int(name, getattr(self, name), minimum=1)
        if self.stride is not None:
            check_int("stride", self.stride, minimum=1)
        check_int("seed", self.seed, minimum=0)
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads: must divide dim={self.dim}, got {self.num_heads}")
        if check_number("dropout", self.dropout, minimum=0.0) >= 1.0:
            raise ValueError(f"dropout: must be < 1, got {self.dropout}")
        if check_number("id_dropout", self.id_dropout, minimum=0.0) >= 1.0:
            raise ValueError(f"id_dropout: must be < 1, got {self.id_dropout}")
        check_number("lr", self.lr, minimum=0.0, exclusive=True)
        if self.item_init_std is not None:
            check_number("item_init_std", self.item_init_std, minimum=0.0, exclusive=True)
        if check_number("label_smoothing", self.label_smoothing, minimum=0.0) >= 1.0:
            raise ValueError(f"label_smoothing: must be < 1, got {self.label_smoothing}")
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_number("clip", self.clip, minimum=0.0)
        if (
            isinstance(self.max_seconds, bool)
            or not isinstance(self.max_seconds, (int, float))
            or not (self.max_seconds > 0)
        ):
            raise ValueError(f"max_seconds: must be a number > 0 (inf: no budget), got {self.max_seconds!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory: expected one of {MEMORY_MODES}, got {self.memory!r}")
        if self.item_text not in ITEM_TEXT_CHOICES:
            raise ValueError(f"item_text: expected one of {ITEM_TEXT_CHOICES}, got {self.item_text!r}")
        for name in ("item_features", "user_features", "train_on_valid", "length_buckets"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {type(getattr(self, name)).__name__}")

    @classmethod
    def from_dict(cls, d: dict) -> SASRecConfig:
        """The config of a dict (unknown keys ignored, so files written by other versions still load)."""
        if not isinstance(d, dict):
            raise TypeError(f"config: expected a dict of settings, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def lean_memory(self, num_items: int) -> bool:
        """Whether a model of `num_items` items trains on the lean path (see `memory`)."""
        return self.memory == "lean" or (self.memory == "auto" and num_items >= LEAN_MIN_ITEMS)

    def trajectory_fields(self) -> dict:
        """The settings a resumed run must share with its checkpoint (all but the stopping limits; max_epochs too
        under a cosine schedule, which it shapes)."""
        d = asdict(self)
        d.pop("memory")  # changes only the order of float rounding, and may differ between machines
        for name in (
            ("max_seconds", "patience") if self.lr_schedule == "cosine" else ("max_epochs", "max_seconds", "patience")
        ):
            d.pop(name)
        return d
