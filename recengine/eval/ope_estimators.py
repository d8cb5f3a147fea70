"""Off-policy estimator classes with one interface in the style of the Open Bandit Pipeline (obp) (NumPy only:
importing this module does not import torch).

``DirectMethod``, ``InverseProbabilityWeighting``, ``SelfNormalizedIPW``, ``DoublyRobust``, ``SelfNormalizedDR``,
``SwitchDR`` and ``DoublyRobustWithShrinkage`` (DRos). Each has ``estimate_policy_value(...)``,
``estimate_interval(...)`` (a seeded, vectorised percentile bootstrap) and ``effective_sample_size(...)``, and takes
the logs either as obp's arrays (``reward``, ``action``, ``position``, ``pscore``, ``action_dist``,
``estimated_rewards_by_reg_model``) or as per-decision arrays (``target_probs``, ``q_logged``, ``v_target``,
optionally ``sessions``); see ``recengine.eval.ope_inputs`` for the fields. Pass ``rounds=prepare_rounds(...)``
to check and reduce large arrays once for several estimators.

With w_i = pi(a_i | x_i, p_i) / pscore_i, q_i = q^(x_i, a_i, p_i), v_i = sum_a pi(a | x_i, p_i) q^(x_i, a, p_i):

    DM        mean(v)                                   biased by the reward model
    IPS       mean(w r)                                 unbiased
    SNIPS     sum(w r) / sum(w)                         self-normalised: bounded by the rewards, slightly biased
    DR        mean(v + w (r - q))                       unbiased for any reward model (Dudik et al. 2011)
    SNDR      mean(v) + sum(w (r - q)) / sum(w)         DR with self-normalised weights
    Switch-DR mean(v + [w <= lambda] w (r - q))         drops the correction where weights are large (Wang et al.)
    DRos      mean(v + lambda w / (w^2 + lambda) (r - q))  shrinks large weights (Su et al. 2020)

``clip`` (weight clipping, w -> min(w, clip)) applies to IPS, SNIPS, DR and SNDR. With ``sessions`` the
per-decision ratios become cumulative (``rho_t = prod_{s <= t} w_s``) and IPS, SNIPS, DR and DM estimate the
expected return per session, by the per-session formulas of ``recengine.eval.ope``, whose functions are the
same estimators on per-decision arrays.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from recengine.eval.ope import effective_sample_size
from recengine.eval.ope_inputs import LoggedRounds, prepare_rounds
from recengine.eval.ope_sessions import cumulative_ratios, session_layout

__all__ = [
    "Interval",
    "OffPolicyEstimator",
    "DirectMethod",
    "InverseProbabilityWeighting",
    "SelfNormalizedIPW",
    "DoublyRobust",
    "SelfNormalizedDR",
    "SwitchDR",
    "DoublyRobustWithShrinkage",
    "ESTIMATORS",
]


@dataclass(frozen=True)
class Interval:
    """A percentile-bootstrap confidence interval around an estimate."""

    estimate: float
    """the estimator's value on the logs themselves"""
    lower: float
    upper: float
    bootstrap_mean: float
    """mean of the bootstrap replicates (obp reports this as "mean")"""
    alpha: float
    """1 - confidence level"""
    n_bootstrap_samples: int

    def to_dict(self) -> dict:
        """The fields by name, plus obp's keys ("mean", "95.0% CI (lower)", "95.0% CI (upper)")."""
        level = f"{100 * (1 - self.alpha)}% CI"
        return {
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "bootstrap_mean": self.bootstrap_mean,
            "alpha": self.alpha,
            "n_bootstrap_samples": self.n_bootstrap_samples,
            "mean": self.bootstrap_mean,
            f"{level} (lower)": self.lower,
            f"{level} (upper)": self.upper,
        }


@dataclass(frozen=True)
class _Terms:
    """An estimate as per-unit terms (a unit: a round, or a session with ``sessions``):
    value = mean(mean_terms) + sum_c sum(ratio_num[:, c]) / sum(ratio_den[:, c]) (a column with a zero
    denominator adds 0). Resampling units and recomputing this is the bootstrap."""

    mean_terms: np.ndarray | None
    ratio_num: np.ndarray | None = None
    ratio_den: np.ndarray | None = None

    @property
    def num_units(self) -> int:
        return int((self.mean_terms if self.mean_terms is not None else self.ratio_num).shape[0])

    def value(self) -> float:
        total = 0.0 if self.mean_terms is None else float(np.mean(self.mean_terms))
        if self.ratio_num is not None:
            num, den = self.ratio_num.sum(axis=0), self.ratio_den.sum(axis=0)
            total += float(np.sum(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))
        return total


#: bootstrap replicates are drawn in blocks of at most this many resampled terms (bounds the memory)
_BOOTSTRAP_BLOCK_TERMS = 1 << 23


def _bootstrap(terms: _Terms, n_bootstrap_samples: int, rng: np.random.Generator) -> np.ndarray:
    """The estimate on ``n_bootstrap_samples`` resamples (with replacement) of the units, a block at a time."""
    units = terms.num_units
    columns = 1 + (0 if terms.ratio_num is None else 2 * terms.ratio_num.shape[1])
    block = max(1, min(n_bootstrap_samples, _BOOTSTRAP_BLOCK_TERMS // (units * columns)))
    out = np.empty(n_bootstrap_samples)
    for start in range(0, n_bootstrap_samples, block):
        b = min(block, n_bootstrap_samples - start)
        idx = rng.integers(0, units, size=(b, units))
        value = np.zeros(b) if terms.mean_terms is None else terms.mean_terms[idx].mean(axis=1)
        if terms.ratio_num is not None:
            num, den = terms.ratio_num[idx].sum(axis=1), terms.ratio_den[idx].sum(axis=1)
            value = value + np.divide(num, den, out=np.zeros_like(num), where=den > 0).sum(axis=1)
        out[start : start + b] = value
    return out


def _check_clip(clip: float | None) -> float | None:
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a number > 0 (or None for no clipping), got {type(clip).__name__} {clip!r}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0 (or None for no clipping), got {clip}")
    return clip


def _check_lambda(value: object) -> float:
    """An estimator's lambda_: a number >= 0 (inf allowed: no threshold or shrinkage); TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"lambda_ must be a number >= 0, got {type(value).__name__} {value!r}")
    if not value >= 0:
        raise ValueError(f"lambda_ must be >= 0, got {value}")
    return float(value)


class OffPolicyEstimator:
    """Base class: an estimate of the evaluation policy's value from logged feedback.

    Every method takes the same keyword arguments: the logs as obp-style arrays or per-decision arrays (see
    ``recengine.eval.ope_inputs``), or ``rounds=`` a ``LoggedRounds`` already prepared by ``prepare_rounds``.
    Keywords only: obp's estimators order their positional arguments differently from one another, so code
    written for obp passes them by name, and runs here unchanged.
    Subclasses define ``_terms`` (the estimate as per-unit terms) and ``_weights`` (the weights they apply).
    """

    name = ""
    #: needs estimated_rewards_by_reg_model (or q_logged / v_target)
    needs_reward_model = False
    #: estimates a return per session when ``sessions`` is given
    supports_sessions = False

    def _rounds(self, rounds: LoggedRounds | None, arrays: dict) -> LoggedRounds:
        if rounds is None:
            rounds = prepare_rounds(**arrays)
        elif any(v is not None for v in arrays.values()):
            raise ValueError("give either rounds= or the logged arrays, not both")
        if self.needs_reward_model and (rounds.q_logged is None or rounds.v_target is None):
            raise ValueError(
                f"{self.name} needs a reward model: estimated_rewards_by_reg_model (or q_logged and v_target)"
            )
        if rounds.sessions is not None and not self.supports_sessions:
            raise ValueError(
                f"{self.name} estimates per-round values; sessions are supported by "
                f"{', '.join(n for n, c in ESTIMATORS.items() if c.supports_sessions)}"
            )
        return rounds

    def _terms(self, rounds: LoggedRounds) -> _Terms:
        raise NotImplementedError

    def _weights(self, rounds: LoggedRounds) -> np.ndarray:
        return rounds.weights()

    def estimate_policy_value(
        self,
        *,
        reward=None,
        action=None,
        position=None,
        pscore=None,
        action_dist=None,
        estimated_rewards_by_reg_model=None,
        target_probs=None,
        q_logged=None,
        v_target=None,
        sessions=None,
        rounds: LoggedRounds | None = None,
    ) -> float:
        """The estimated value of the evaluation policy: per round, or per session with ``sessions``."""
        arrays = dict(
            reward=reward,
            action=action,
            position=position,
            pscore=pscore,
            action_dist=action_dist,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
            target_probs=target_probs,
            q_logged=q_logged,
            v_target=v_target,
            sessions=sessions,
        )
        return self._terms(self._rounds(rounds, arrays)).value()

    def estimate_interval(
        self,
        *,
        reward=None,
        action=None,
        position=None,
        pscore=None,
        action_dist=None,
        estimated_rewards_by_reg_model=None,
        target_probs=None,
        q_logged=None,
        v_target=None,
        sessions=None,
        rounds: LoggedRounds | None = None,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 1000,
        random_state: int | None = 0,
    ) -> Interval:
        """A (1 - alpha) percentile-bootstrap interval: the logged units (rounds, or whole sessions) resampled
        with replacement ``n_bootstrap_samples`` times from ``np.random.default_rng(random_state)``."""
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
        if isinstance(n_bootstrap_samples, bool) or not isinstance(n_bootstrap_samples, numbers.Integral):
            raise TypeError(
                f"n_bootstrap_samples must be an int >= 2, got {type(n_bootstrap_samples).__name__} "
                f"{n_bootstrap_samples!r}"
            )
        if n_bootstrap_samples < 2:
            raise ValueError(f"n_bootstrap_samples must be an int >= 2, got {n_bootstrap_samples}")
        if random_state is not None and (
            isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0
        ):
            raise ValueError(f"random_state must be None or an int >= 0, got {random_state!r}")
        arrays = dict(
            reward=reward,
            action=action,
            position=position,
            pscore=pscore,
            action_dist=action_dist,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
            target_probs=target_probs,
            q_logged=q_logged,
            v_target=v_target,
            sessions=sessions,
        )
        terms = self._terms(self._rounds(rounds, arrays))
        reps = _bootstrap(terms, int(n_bootstrap_samples), np.random.default_rng(random_state))
        lower, upper = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        return Interval(
            terms.value(), float(lower), float(upper), float(reps.mean()), float(alpha), int(n_bootstrap_samples)
        )

    def effective_sample_size(
        self,
        *,
        reward=None,
        action=None,
        position=None,
        pscore=None,
        action_dist=None,
        estimated_rewards_by_reg_model=None,
        target_probs=None,
        q_logged=None,
        v_target=None,
        sessions=None,
        rounds: LoggedRounds | None = None,
    ) -> float:
        """Kish's effective sample size of the per-decision weights this estimator applies (after clipping,
        switching or shrinkage); the number of rounds for the direct method, which weights nothing."""
        arrays = dict(
            reward=reward,
            action=action,
            position=position,
            pscore=pscore,
            action_dist=action_dist,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
            target_probs=target_probs,
            q_logged=q_logged,
            v_target=v_target,
            sessions=sessions,
        )
        return effective_sample_size(self._weights(self._rounds(rounds, arrays)))


def _session_terms(rounds: LoggedRounds, per_row: np.ndarray) -> np.ndarray:
    """Per-session sums of ``per_row`` (already multiplied by the cumulative weights)."""
    idx, _, S, _ = session_layout(rounds.sessions, len(rounds))
    return np.bincount(idx, weights=per_row, minlength=S)


def _cumulative_weights(rounds: LoggedRounds, w: np.ndarray):
    """(rho per row, rho of the previous step per row, session layout) for cumulative importance weights."""
    idx, step, S, T = session_layout(rounds.sessions, len(rounds))
    cum = cumulative_ratios(w, idx, step, S, T)
    prev = np.where(step > 0, cum[idx, np.maximum(step - 1, 0)], 1.0)
    return cum, cum[idx, step], prev, (idx, step, S, T)


class DirectMethod(OffPolicyEstimator):
    """DM: the reward model's expected reward under the evaluation policy, mean(v). With ``sessions``: the
    mean of v over sessions' first steps (v then being a value model of the return-to-go)."""

    name = "dm"
    needs_reward_model = True
    supports_sessions = True

    def _rounds(self, rounds, arrays):
        # obp's DM takes only action_dist, estimated_rewards_by_reg_model and position: the logged action,
        # reward and propensity do not enter the estimate, so placeholders stand in for them
        if (
            rounds is None
            and arrays["action_dist"] is not None
            and all(arrays[k] is None for k in ("reward", "action", "pscore"))
        ):
            n = np.shape(arrays["action_dist"])[0]
            arrays = {**arrays, "reward": np.zeros(n), "action": np.zeros(n, np.int64), "pscore": np.ones(n)}
        return super()._rounds(rounds, arrays)

    def _terms(self, rounds):
        if rounds.sessions is None:
            return _Terms(rounds.v_target)
        _, step, _, _ = session_layout(rounds.sessions, len(rounds))
        return _Terms(rounds.v_target[step == 0])

    def _weights(self, rounds):
        return np.ones(len(rounds))


class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPS: mean(w r), w clipped at ``clip`` when given; with ``sessions``: mean over sessions of
    sum_t rho_t r_t. Unbiased without clipping."""

    name = "ips"
    supports_sessions = True

    def __init__(self, clip: float | None = None):
        self.clip = _check_clip(clip)

    def _weights(self, rounds):
        w = rounds.weights()
        return w if self.clip is None else np.minimum(w, self.clip)

    def _terms(self, rounds):
        w = self._weights(rounds)
        if rounds.sessions is None:
            return _Terms(w * rounds.reward)
        _, rho, _, _ = _cumulative_weights(rounds, w)
        return _Terms(_session_terms(rounds, rho * rounds.reward))


class SelfNormalizedIPW(InverseProbabilityWeighting):
    """SNIPS: sum(w r) / sum(w); with ``sessions`` the weighted per-decision form
    sum_t (sum_i rho_it r_it) / (sum_i rho_it), a session that ended keeping its last ratio and reward 0."""

    name = "snips"

    def _terms(self, rounds):
        w = self._weights(rounds)
        if rounds.sessions is None:
            return _Terms(None, (w * rounds.reward)[:, None], w[:, None])
        cum, _, _, (idx, step, S, T) = _cumulative_weights(rounds, w)
        R = np.zeros((S, T))
        R[idx, step] = rounds.reward
        return _Terms(None, cum * R, cum)


class DoublyRobust(InverseProbabilityWeighting):
    """DR: mean(v + w (r - q)); with ``sessions``: mean over sessions of sum_t [rho_t (r_t - q_t) +
    rho_{t-1} v_t] (q, v then value models of the return-to-go). Unbiased without clipping."""

    name = "dr"
    needs_reward_model = True

    def _terms(self, rounds):
        w = self._weights(rounds)
        residual = rounds.reward - rounds.q_logged
        if rounds.sessions is None:
            return _Terms(rounds.v_target + w * residual)
        _, rho, prev, _ = _cumulative_weights(rounds, w)
        return _Terms(_session_terms(rounds, rho * residual + prev * rounds.v_target))


class SelfNormalizedDR(DoublyRobust):
    """SNDR: mean(v) + sum(w (r - q)) / sum(w), DR with the weights normalised to mean 1."""

    name = "sndr"
    supports_sessions = False

    def _terms(self, rounds):
        w = self._weights(rounds)
        return _Terms(rounds.v_target, (w * (rounds.reward - rounds.q_logged))[:, None], w[:, None])


class SwitchDR(OffPolicyEstimator):
    """Switch-DR: mean(v + [w <= lambda_] w (r - q)): the DR correction where the weight is at most
    ``lambda_``, the reward model alone where it is larger (obp's SwitchDoublyRobust). lambda_ = inf is DR,
    lambda_ = 0 is DM."""

    name = "switch-dr"
    needs_reward_model = True

    def __init__(self, lambda_: float = float("inf")):
        self.lambda_ = _check_lambda(lambda_)

    def _weights(self, rounds):
        w = rounds.weights()
        return np.where(w <= self.lambda_, w, 0.0)

    def _terms(self, rounds):
        return _Terms(rounds.v_target + self._weights(rounds) * (rounds.reward - rounds.q_logged))


class DoublyRobustWithShrinkage(OffPolicyEstimator):
    """DRos: mean(v + w' (r - q)) with the shrunk weight w' = lambda_ w / (w^2 + lambda_) (optimistic
    shrinkage, Su et al. 2020). lambda_ = inf is DR, lambda_ = 0 is DM."""

    name = "dros"
    needs_reward_model = True

    def __init__(self, lambda_: float = float("inf")):
        self.lambda_ = _check_lambda(lambda_)

    def _weights(self, rounds):
        w = rounds.weights()
        if np.isinf(self.lambda_):
            return w
        return self.lambda_ * w / (np.square(w) + self.lambda_) if self.lambda_ > 0 else np.zeros_like(w)

    def _terms(self, rounds):
        return _Terms(rounds.v_target + self._weights(rounds) * (rounds.reward - rounds.q_logged))


#: every estimator class by its short name
ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (
        DirectMethod,
        InverseProbabilityWeighting,
        SelfNormalizedIPW,
        DoublyRobust,
        SelfNormalizedDR,
        SwitchDR,
        DoublyRobustWithShrinkage,
    )
}
