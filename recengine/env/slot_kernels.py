"""The slot kernels both simulators share, and the counter-based random numbers they draw.

A simulator keeps B sessions ("slots") in arrays and advances them with numba kernels. Every random draw is a hash
of (stream seed, episode index, step, purpose) — ``uniform`` — so a slot's sessions are a pure function of its
stream seed and the slates it is shown: the single environment and slot ``b`` of the vectorised one agree draw for
draw, episode after episode, in both simulators. ``draw_user`` draws the user a new session starts with,
``respond_slot`` a slot's response to a slate, ``leave_slot`` whether the session ends.

After each step (slate ``s``, clicked item ``c`` or none), ``respond_slot`` advances the slot's state::

    f <- fatigue_decay * f + fatigue_shown * mean_{j in s} g_j + fatigue_click * g_c   (last term only on a click)
    history <- history + [c]                     (only on a click; the last L clicks)
    m <- 0 on a click, else m + 1                (consecutive steps without a click)
    reward = 1.0 on a click, else 0.0

``g_j`` is item j's genre vector, ``f`` the session's genre fatigue. ``leave_slot`` then ends the session with the
probability the simulator's leaving model gives, and truncates it at ``max_steps`` steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["uniform", "draw_user", "respond_slot", "leave_slot"]

# purposes of the counter-based random draws
_DRAW_CHOICE = 0
_DRAW_QUIT = 1
_DRAW_USER = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@njit(cache=True, inline="always")
def _mix64(x):
    # splitmix64 finaliser
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True)
def uniform(seed, episode, step, purpose):
    """A uniform in [0, 1) from (stream seed, episode, step, purpose) — the same on every call."""
    h = _mix64(seed + _GOLDEN)
    h = _mix64(h ^ (np.uint64(episode) + _GOLDEN))
    h = _mix64(h ^ (np.uint64(step) + _GOLDEN))
    h = _mix64(h ^ (np.uint64(purpose) + _GOLDEN))
    return np.float64(h >> _S11) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def draw_user(stream_seed, episode, user_pool):
    """The user of a slot's new session: uniform over ``user_pool``, from the (stream seed, episode) draw."""
    r = uniform(stream_seed, episode, 0, _DRAW_USER)
    return user_pool[min(int(r * user_pool.shape[0]), user_pool.shape[0] - 1)]


@njit(cache=True, inline="always")
def respond_slot(
    b,
    slates,
    probs,
    stream_seed,
    episode,
    t,
    history,
    fatigue,
    streak,
    ep_return,
    genres,
    fatigue_decay,
    fatigue_shown,
    fatigue_click,
    clicked_item,
    click_pos,
    rewards,
):
    """Draw slot b's response from probs (B, k+1); advance its fatigue, history, streak and return; record the
    click. Returns the clicked position (k: no click). Both simulators respond this way."""
    k = slates.shape[1]
    G = genres.shape[1]
    L = history.shape[1]
    r = uniform(stream_seed[b], episode[b], t[b], _DRAW_CHOICE)
    pos = k  # no click unless r falls in a slate item's share
    acc = 0.0
    for j in range(k):
        acc += probs[b, j]
        if r < acc:
            pos = j
            break
    # fatigue: decay, then the shown genres (averaged over the slate), then the clicked genres
    for g in range(G):
        shown = 0.0
        for j in range(k):
            shown += genres[slates[b, j], g]
        fatigue[b, g] = fatigue_decay * fatigue[b, g] + fatigue_shown * shown / k
    if pos < k:
        it = slates[b, pos]
        for g in range(G):
            fatigue[b, g] += fatigue_click * genres[it, g]
        for i in range(L - 1):
            history[b, i] = history[b, i + 1]
        history[b, L - 1] = it
        streak[b] = 0
        clicked_item[b] = it
        click_pos[b] = pos
        rewards[b] = 1.0
    else:
        streak[b] += 1
        clicked_item[b] = -1
        click_pos[b] = -1
        rewards[b] = 0.0
    ep_return[b] += rewards[b]
    return pos


@njit(cache=True, inline="always")
def leave_slot(b, p_quit, stream_seed, episode, t, max_steps, terminated, truncated):
    """Slot b's leaving draw (ends with probability p_quit) and step count (truncated at max_steps)."""
    q = uniform(stream_seed[b], episode[b], t[b], _DRAW_QUIT)
    t[b] += 1
    terminated[b] = q < p_quit
    truncated[b] = (not terminated[b]) and t[b] >= max_steps
