"""recengine.data: the dataset every loader returns; loaders for MovieLens (ml-100k, ml-1m, ml-20m, ml-25m),
RecBole atomic datasets, sequence files (the SASRec/BERT4Rec format: Amazon Beauty), your own logs (DataFrame,
Arrow, Parquet, CSV), any of them from a path (load_local); benchmark filtering, the synthetic generator,
histories, splits and jagged batches."""

from .atomic import load_atomic  # noqa: F401
from .dataset import MovieLens, MovieLensFormatError  # noqa: F401
from .exclusion import csr_tensors, exclusion_csr  # noqa: F401
from .filtering import drop_rare  # noqa: F401
from .interactions import load_interactions  # noqa: F401
from .local import load_local  # noqa: F401
from .movielens import load_movielens, parse_movielens  # noqa: F401
from .registry import DATASETS, load_dataset  # noqa: F401
from .sequence_file import load_sequence_file  # noqa: F401
from .sequences import (  # noqa: F401
    Histories,
    LeaveOneOut,
    build_histories,
    gather_csr,
    histories_of,
    item_feature_bags,
    jagged_tables,
    last_windows,
    leave_one_out,
    training_windows,
    user_feature_bags,
    user_feature_tables,
)
from .synthetic import make_synthetic  # noqa: F401
