"""The HERO runtime of the app: loads a checkpoint once per process, encodes a video record at ingest
(V_temp for search, fused frame states for QA, stored in the record), and encodes queries.

The default checkpoint is the one shipped in assets/hero-mini (trained on SynthTV); `--checkpoint`
takes any local directory or hub repo id with the same files (model.safetensors + config.json).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import sys
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from demo.errors import InputError
from demo.features import resolve_device
from demo.library import VideoRecord
from demo.subtitles import Subtitle, align_to_frames, held

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "hero-mini"
# Text limits as in training (training/data.py; the official TVR/TVQA max_txt_len).
MAX_SUB_TOKENS = 60  # per subtitle and per query
MAX_QA_TOKENS = 120  # per "[sep] question [sep] answer"


def tune_cpu_allocator() -> bool:
    """Let glibc keep freed tensor memory instead of handing it back to the OS after each op.

    CPU inference allocates and frees ~10-MB activations hundreds of times per video; by default
    glibc trims (or unmaps) them, and every new one page-faults its memory in again: ~25k faults
    and ~0.05-0.1 CPU-s per 10-minute video with hero-mini. Big blocks (> 64 MB) are still mapped
    separately, and up to 256 MB freed at the heap top is kept. Process-wide; glibc (Linux) only:
    returns False (and changes nothing) elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # malloc.h
        return bool(
            libc.mallopt(m_mmap_threshold, 64 << 20)
            and libc.mallopt(m_trim_threshold, 256 << 20)
            and libc.mallopt(m_top_pad, 16 << 20)
        )
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


# HERO's video score (best query-frame cosine) below which it has no say in the app's fused scores, and
# from which it has its full share (demo.search.hero_weight). A checkpoint may carry its own
# (config.json `app_gate`): these belong to the shipped one's cosine scale. Measured (training/RESULTS.md,
# "Gated fusion"): on SynthTV the right video scores 0.14-0.63 (91 of 95 queries >= 0.25), on real
# footage 0.12-0.28 whatever the query, on SynthTV's sounds and signs (which HERO never reads) 0.08-0.32.
HERO_GATE = (0.25, 0.45)


def hero_subtitles(record: VideoRecord, config) -> list[Subtitle]:
    """The subtitles HERO reads for ``record``: Whisper's held as the checkpoint asks
    (``config.asr_hold_s``); a user's subtitle file keeps its own times."""
    hold = getattr(config, "asr_hold_s", 0.0)
    if hold and record.subtitles_source.startswith("whisper"):
        return held(list(record.subtitles), hold)
    return list(record.subtitles)


class HeroEngine:
    """A loaded HERO checkpoint plus the text tokenizer it was trained with."""

    def __init__(self, checkpoint: str | Path, device: str = "auto"):
        from models.io import load_pretrained, resolve_model_dir

        try:
            path = resolve_model_dir(checkpoint)
            self.device = resolve_device(device)
            self.model = load_pretrained(path, device=self.device)
        except (FileNotFoundError, ValueError, OSError) as e:
            raise InputError(
                f"{checkpoint}: cannot load the HERO checkpoint ({str(e).splitlines()[0][:160]})"
            ) from None
        self.config = self.model.config
        gate = getattr(self.config, "app_gate", None) or HERO_GATE
        try:
            self.gate = tuple(float(x) for x in gate)
            ok = len(self.gate) == 2 and self.gate[0] < self.gate[1]
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(
                f"{checkpoint}: config.json app_gate must be [low, high], low < high, not {gate!r}"
            )
        self.path = path
        # What made the cached states: the weights' bytes (a retrained checkpoint re-encodes videos).
        h = hashlib.sha256((path / "config.json").read_bytes())
        with open(path / "model.safetensors", "rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
        self.key = h.hexdigest()[:12]
        self.can_search = hasattr(self.model, "encode_query") and hasattr(self.model, "span_logits")
        self.can_answer = hasattr(self.model, "qa_heads")
        self._queries: dict[tuple[str, ...], torch.Tensor] = {}
        self._lock = threading.Lock()
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads()))
            tune_cpu_allocator()

    # --- inputs ---------------------------------------------------------------------------------------

    def video_inputs(self, record: VideoRecord) -> tuple[np.ndarray, list[tuple[list[int], list[int]]]]:
        """(features (N, D), [(subtitle token ids, frame indices)]) as HERO-mini was trained on. A
        checkpoint trained with concept tokens (config.concept_tokens = k) also gets, per frame, its top-k
        ImageNet names as "name, name, name" covering that frame only."""
        from demo.text import token_ids

        subs = hero_subtitles(record, self.config)
        frames = align_to_frames(subs, record.n_frames, record.frame_interval)
        pairs = list(zip(token_ids([s.text for s in subs], max_len=MAX_SUB_TOKENS), frames))
        k = getattr(self.config, "concept_tokens", 0)
        if k:
            names = [", ".join(c[:k]) for c in record.concepts]
            pairs += [(ids, [i]) for i, ids in enumerate(token_ids(names, max_len=MAX_SUB_TOKENS))]
        return record.features, pairs

    def qa_token_ids(self, question: str, candidates: list[str]) -> list[list[int]]:
        """ "[sep] question [sep] answer" ids per candidate, truncated as in training."""
        from demo.text import token_ids
        from models.hero_api import qa_input_ids

        q = token_ids([question], max_len=MAX_QA_TOKENS // 2)[0]
        a = token_ids(candidates, max_len=MAX_QA_TOKENS // 2)
        return [x[:MAX_QA_TOKENS] for x in qa_input_ids(q, a, self.config.sep_token_id)]

    # --- encoding -------------------------------------------------------------------------------------

    def encode_record(self, record: VideoRecord) -> None:
        """Add `hero.v_temp` and `hero.fused` (N, H) to the record unless this checkpoint made them."""
        if record.info.get("hero_key") == self.key and "hero.v_temp" in record.arrays:
            return
        from models.hero_api import encode_video

        feats, subs = self.video_inputs(record)
        if feats.shape[1] != self.config.vfeat_dim:
            raise InputError(
                f"{self.path}: the checkpoint expects {self.config.vfeat_dim}-d frame features, "
                f"the video has {feats.shape[1]}-d ({record.feature_encoder})"
            )
        enc = encode_video(self.model, feats, subs)
        record.arrays["hero.v_temp"] = enc.v_temp.numpy()
        record.arrays["hero.fused"] = enc.fused.numpy()
        record.info["hero_key"] = self.key

    def query_vectors(self, queries: list[str]) -> torch.Tensor:
        """(Q, H) query vectors (the query text with the tokenizer's [CLS] ... [SEP]). The last few
        queries are remembered, so a library search encodes its query once, not once per video."""
        from demo.text import token_ids
        from models.hero_api import encode_queries

        key = tuple(queries)
        with self._lock:
            hit = self._queries.get(key)
        if hit is None:
            hit = encode_queries(self.model, token_ids(queries, max_len=MAX_SUB_TOKENS, special=True))
            with self._lock:
                self._queries[key] = hit
                while len(self._queries) > 32:
                    self._queries.pop(next(iter(self._queries)))
        return hit

    def candidate_states(self, record: VideoRecord, qa_ids: list[list[int]]) -> torch.Tensor:
        """(C, N, H) fused frames per candidate for a checkpoint with ``config.qa_in_subtitles`` (the
        official TVQA input: each "[sep] q [sep] a" appended to every subtitle; one cross-modal pass
        per candidate, never cached: the question is new each time)."""
        from models.hero_api import encode_candidates

        feats, subs = self.video_inputs(record)
        return encode_candidates(self.model, feats, subs, qa_ids)

    def states(self, record: VideoRecord) -> tuple[torch.Tensor, torch.Tensor]:
        """The record's cached (v_temp, fused), encoding it first when they are missing or stale."""
        self.encode_record(record)
        return torch.from_numpy(record.arrays["hero.v_temp"]), torch.from_numpy(record.arrays["hero.fused"])


@lru_cache(maxsize=2)
def _load(checkpoint: str, device: str) -> HeroEngine:
    return HeroEngine(checkpoint, device)


def load_engine(checkpoint: str | Path | None = None, device: str = "auto") -> HeroEngine | None:
    """The engine for `checkpoint` (default: the shipped one), or None when no checkpoint is shipped
    and none was asked for, or `checkpoint` is "none": the app then searches and answers with its
    transparent text matcher."""
    if isinstance(checkpoint, str) and checkpoint.lower() == "none":
        return None
    if checkpoint is None:
        if not (DEFAULT_CHECKPOINT / "model.safetensors").is_file():
            return None
        checkpoint = DEFAULT_CHECKPOINT
    return _load(str(checkpoint), device)
