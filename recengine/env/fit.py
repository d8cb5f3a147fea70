"""Fit the sequence-aware simulator to a dataset, from its leave-one-out TRAIN split only.

    sim = fit_simulator(data)                       # ml-100k: about the response model's training budget
    env = SequentialVecSim(sim, 4096)

Every part is fitted on the train prefixes: the response model (early-stopped on each user's last train item),
the users' consumed items and starting histories, the sessions (inactivity gap on train timestamps) and the
leaving model, and the no-click offset. Nothing reads a validation or test item.

No-click offset ``c``: rating logs hold no impressions, so how often a slate is ignored is not identified by the
data. ``c`` is set so that the response model's own best slate (its top-k unconsumed items at a session start)
is clicked with probability ``top_slate_ctr`` on average over users (default 0.5: the best possible slate is
clicked half the time); every other slate's click rate then follows from the probability mass the model puts on
it. The value is reported with the fit.

Users: ``fit_simulator(data, split, users=half)`` fits every part on those users' train prefixes only and makes them
the simulator's population (the users its sessions draw); the catalog and the other users' train histories (their
consumed items, should one simulate them on purpose) are kept. Two simulators fitted on disjoint halves let agents
be trained in one and judged in the other, on users and by a user model they never met.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from recengine.data import histories_of, leave_one_out
from recengine.data.sequences import LeaveOneOut
from recengine.env.calibrate import genre_matrix, user_feature_matrix
from recengine.env.response_model import fit_response_model, train_histories
from recengine.env.sequential_sim import SeqSimConfig, SequentialUserModel, calibrate_no_click, slate_probabilities
from recengine.env.sessions import (
    SESSION_GAP_SECONDS,
    fit_return_model,
    fit_session_model,
    session_fit_table,
    split_sessions,
)
from recengine.padding import PAD_ID

__all__ = ["fit_simulator", "fit_sessions", "split_for_users"]


def split_for_users(split: LeaveOneOut, users) -> LeaveOneOut:
    """``split`` restricted to ``users`` (distinct ids in [0, U)): every other user keeps an empty train prefix and
    no targets, so whatever is fitted on the result (train prefixes) reads only these users' events."""
    U = split.train_end.size
    users = np.asarray(users)
    if users.dtype.kind not in "iu" or users.ndim != 1 or users.size == 0:
        raise ValueError("users must be a non-empty 1-D array of integer user ids")
    if users.min() < 0 or users.max() >= U:
        raise IndexError(f"users holds ids outside [0, {U})")
    if np.unique(users).size != users.size:
        raise ValueError("users must not repeat an id")
    keep = np.zeros(U, bool)
    keep[users] = True
    starts = split.histories.offsets[:-1]
    pad = np.full(U, PAD_ID, np.int64)
    return LeaveOneOut(
        split.histories,
        np.where(keep, split.train_end, starts).astype(np.int64),
        np.where(keep, split.valid_target, pad),
        np.where(keep, split.test_target, pad),
    )


def fit_sessions(split: LeaveOneOut, gap_seconds: float = SESSION_GAP_SECONDS) -> tuple:
    """(SessionModel, report) fitted to the sessions of the TRAIN events of ``split``; the report holds the
    parameters, the observed-vs-fitted table and the returning model (``recengine.env.sessions``)."""
    h = split.histories
    lengths, owners, starts, stops = split_sessions(h.offsets, h.timestamps, split.train_end, gap_seconds=gap_seconds)
    model = fit_session_model(lengths, gap_seconds=gap_seconds)
    report = {
        "gap_seconds": gap_seconds,
        "num_sessions": int(lengths.size),
        "parameters": model.to_dict(),
        "fit": session_fit_table(lengths, model),
        "returning": fit_return_model(lengths, owners, starts, stops),
    }
    return model, report


def fit_simulator(
    data,
    split: LeaveOneOut | None = None,
    *,
    config: SeqSimConfig | None = None,
    quick: bool = False,
    seed: int = 1,
    response_config=None,
    popularity_weight: float = 1.0,
    beta: float = 1.0,
    top_slate_ctr: float = 0.5,
    gap_seconds: float = SESSION_GAP_SECONDS,
    users=None,
) -> SequentialUserModel:
    """The fitted ``SequentialUserModel`` of a MovieLens-like ``data`` (``user/item/timestamp``, item genres,
    categorical user features), from the TRAIN part of ``split`` (default: ``leave_one_out(histories_of(data))``).

    ``quick``: a small response model (seconds; tests and --quick). ``seed``: the response model's own seed (keep
    it apart from the agents'). ``response_config``: a ``SASRecConfig`` overriding the response model's settings.
    ``users``: fit on these users only and simulate them (module docstring); default every user.
    ``sim.fit_report`` holds the session fit, the calibration and the response model's training summary.
    """
    start = time.perf_counter()
    split = split if split is not None else leave_one_out(histories_of(data))
    fit_split = split if users is None else split_for_users(split, users)
    config = config or SeqSimConfig()
    response, train_info = fit_response_model(
        data, fit_split, response_config, quick=quick, seed=seed, beta=beta, popularity_weight=popularity_weight
    )
    sessions, session_report = fit_sessions(fit_split, gap_seconds)
    th = train_histories(split)
    population = None if users is None else np.sort(np.asarray(users, dtype=np.int64))
    sim = SequentialUserModel(
        response,
        th.offsets,
        th.items,
        genre_matrix(data),
        sessions,
        user_features=user_feature_matrix(data),
        config=config,
        population=population,
    )
    sim.no_click_offset = calibrate_no_click(sim, top_slate_ctr, users=population)
    sim.fit_report = {
        "response_model": train_info,
        "sessions": session_report,
        "calibration": {"top_slate_ctr": top_slate_ctr, "no_click_offset": sim.no_click_offset},
        "users": {
            "fitted_on": "all" if users is None else "subset",
            "count": int(th.offsets.size - 1 if users is None else population.size),
        },
        "dataset": getattr(data, "name", ""),
        "seconds": time.perf_counter() - start,
    }
    return sim


def _mean_top_slate_ctr(model: SequentialUserModel) -> float:
    """Mean click probability of every user's top-k unconsumed slate at a session start (for tests/reports)."""
    q, lse = model.start_states()
    consumed = model.consumed_matrix()
    u = model.response.utilities(q).masked_fill(consumed, float("-inf"))
    slates = u.topk(model.config.slate_size, dim=1).indices
    probs = slate_probabilities(
        model, q, lse, consumed, slates, torch.zeros(model.num_users, model.num_genres, dtype=torch.float64)
    )
    return float(1.0 - probs[:, -1].mean())
