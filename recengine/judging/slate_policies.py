"""Slate policies that know their probabilities: what off-policy evaluation in the simulator logs and targets.

An action is the ORDERED slate the simulator executes, so a slate policy's probability is that of producing
exactly that sequence of items. They are policies of the one interface (recengine.agents.policy_base.Policy):
`act(obs, explore, rng=...)` draws slates with the NumPy generator given, `prob(obs, slates)` is their probability.
"""

from __future__ import annotations

import numpy as np

from recengine.agents.policy_base import Policy

__all__ = [
    "SlatePolicy",
    "UniformSlatePolicy",
    "DeterministicSlatePolicy",
    "EpsilonGreedySlatePolicy",
    "MixtureSlatePolicy",
    "SoftmaxSlatePolicy",
    "as_slate_policy",
]


def _to_numpy_slates(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)


def _log_uniform_slate(num_items: int, k: int) -> float:
    return -float(np.sum(np.log(num_items - np.arange(k, dtype=np.float64))))


class SlatePolicy(Policy):
    """A (possibly stochastic) slate policy that knows its probabilities.

    ``act(obs, explore=False, rng=generator) -> (B, k) int64`` draws ordered slates for a batch of observations
    (a fixed distribution: ``explore`` changes nothing); ``prob(obs, slates) -> (B,) float64`` is the probability
    it would produce exactly those slates. ``obs`` is the simulator's batched observation dict (history, user_id,
    user_features).
    """

    name = "slate policy"

    def act(self, obs: dict, explore: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def prob(self, obs: dict, slates: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _generator(rng: np.random.Generator | None, policy: SlatePolicy) -> np.random.Generator:
    """`rng`, checked: a stochastic slate policy draws only from the generator its caller gives it."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator for {type(policy).__name__}.act, got {type(rng).__name__}"
        )
    return rng


class UniformSlatePolicy(SlatePolicy):
    """Every ordered slate of k distinct items equally likely: prob = prod_{j<k} 1 / (N - j)."""

    def __init__(self, num_items: int, k: int):
        self.num_items, self.k = int(num_items), int(k)
        self._p = float(np.exp(_log_uniform_slate(self.num_items, self.k)))

    def act(self, obs, explore=False, rng=None):
        B = len(obs["user_id"])
        keys = _generator(rng, self).random((B, self.num_items))
        return (
            np.argpartition(keys, self.k - 1, axis=1)[:, : self.k].astype(np.int64)
            if self.k < self.num_items
            else np.argsort(keys, axis=1).astype(np.int64)
        )

    def prob(self, obs, slates):
        return np.full(len(slates), self._p)


class DeterministicSlatePolicy(SlatePolicy):
    """``slate_fn(obs) -> (B, k)`` (NumPy or torch): prob is 1 for exactly that ordered slate, else 0."""

    deterministic = True

    def __init__(self, slate_fn):
        self.slate_fn = slate_fn
        self._memo = (None, None)

    def slates(self, obs) -> np.ndarray:
        # act() then prob() on the same observation dict (the logging loop) computes the slates once
        if self._memo[0] is not obs:
            self._memo = (obs, _to_numpy_slates(self.slate_fn(obs)))
        return self._memo[1]

    def act(self, obs, explore=False, rng=None):
        return self.slates(obs)

    def prob(self, obs, slates):
        return (self.slates(obs) == np.asarray(slates)).all(axis=1).astype(np.float64)


class MixtureSlatePolicy(SlatePolicy):
    """With probability weights[m], act like policies[m]; prob = sum_m weights[m] * policies[m].prob."""

    def __init__(self, policies, weights):
        w = np.asarray(weights, dtype=np.float64)
        if len(policies) != len(w) or len(w) == 0 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise ValueError("weights must be non-negative, sum to 1, one per policy")
        self.policies, self.weights = list(policies), w

    def act(self, obs, explore=False, rng=None):
        B = len(obs["user_id"])
        rng = _generator(rng, self)
        which = rng.choice(len(self.policies), size=B, p=self.weights)
        out = None
        for m, pol in enumerate(self.policies):  # a few policies, each over the whole batch
            s = pol.act(obs, explore, rng=rng)
            out = s.copy() if out is None else out
            out[which == m] = s[which == m]
        return out

    def prob(self, obs, slates):
        return sum(w * p.prob(obs, slates) for w, p in zip(self.weights, self.policies))


class EpsilonGreedySlatePolicy(MixtureSlatePolicy):
    """``base`` (e.g. a deterministic policy) with probability 1 - epsilon, a uniform random slate otherwise."""

    def __init__(self, base: SlatePolicy, epsilon: float, num_items: int, k: int):
        if not 0.0 < epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1], got {epsilon}")
        super().__init__([as_slate_policy(base), UniformSlatePolicy(num_items, k)], [1.0 - epsilon, epsilon])


class SoftmaxSlatePolicy(SlatePolicy):
    """Plackett-Luce: items drawn one by one without replacement from softmax(scores / temperature).

    ``score_fn(obs) -> (B, N)`` scores (NumPy or torch; -inf removes an item). prob of an ordered slate
    a_1..a_k = prod_j exp(z_{a_j}) / sum_{i not in a_<j} exp(z_i), z = scores / temperature.
    """

    def __init__(self, score_fn, k: int, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.score_fn, self.k, self.temperature = score_fn, int(k), float(temperature)

    def _z(self, obs):
        s = self.score_fn(obs)
        if hasattr(s, "detach"):
            s = s.detach().cpu().numpy()
        return np.asarray(s, dtype=np.float64) / self.temperature

    def act(self, obs, explore=False, rng=None):
        z = self._z(obs)
        keys = z + _generator(rng, self).gumbel(size=z.shape)  # Gumbel-top-k = sequential sampling without replacement
        top = np.argpartition(-keys, self.k - 1, axis=1)[:, : self.k]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1).astype(np.int64)

    def log_prob(self, obs, slates) -> np.ndarray:
        z = self._z(obs)
        slates = np.asarray(slates, dtype=np.int64)
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        total = e.sum(axis=1)
        picked = np.take_along_axis(e, slates, axis=1)  # (B, k)
        before = np.cumsum(picked, axis=1) - picked  # mass removed before each pick
        with np.errstate(divide="ignore"):
            return np.sum(np.log(picked) - np.log(np.maximum(total[:, None] - before, 1e-300)), axis=1)

    def prob(self, obs, slates):
        return np.exp(self.log_prob(obs, slates))


def as_slate_policy(policy) -> SlatePolicy:
    """A SlatePolicy as is; any other policy with ``act(obs, explore=False)`` (an agent: its greedy slate) or a
    plain callable ``obs -> slates`` as a DeterministicSlatePolicy (the adapter that gives it ``prob``)."""
    if isinstance(policy, SlatePolicy):
        return policy
    if hasattr(policy, "act"):
        return DeterministicSlatePolicy(lambda obs: policy.act(obs, explore=False))
    if callable(policy):
        return DeterministicSlatePolicy(policy)
    raise TypeError(f"cannot use {type(policy).__name__} as a slate policy")
