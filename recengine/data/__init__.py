"""recengine.data: MovieLens and RecBole atomic-dataset loaders, the synthetic generator, histories, splits and
jagged batches."""

from .atomic import load_atomic  # noqa: F401
from .exclusion import csr_tensors, exclusion_csr  # noqa: F401
from .movielens import MovieLens, MovieLensFormatError, load_movielens, parse_movielens  # noqa: F401
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
