"""SynthTV dense captions as COOT / MART training data: episodes -> clips (caption segments), sentences
(the captions), paragraphs (all captions of an episode), with cached MiniLM token features.

A caption segment [start, end) in seconds covers the frames it overlaps (frame i covers
[i * 1.5, (i + 1) * 1.5)), the alignment HERO uses for subtitles (``demo.subtitles.align_to_frames``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FRAME_INTERVAL = 1.5


@dataclass
class CaptionEpisode:
    """One video with its dense captions. features (T, D) float32; segments [(start, end)] in seconds and
    clip_ranges [(first, end)] half-open frame ranges, both in time order; captions one sentence each."""

    episode_id: str
    duration: float
    features: np.ndarray
    segments: list[tuple[float, float]]
    clip_ranges: list[tuple[int, int]]
    captions: list[str]


def frame_range(start: float, end: float, n_frames: int, interval: float = FRAME_INTERVAL) -> tuple[int, int]:
    """Half-open range of the frames that [start, end) seconds overlaps; never empty (>= 1 frame). The
    app's definition (``demo.captions.frame_range``), so training and the service cut clips alike."""
    from demo.captions import frame_range as app_frame_range

    return app_frame_range(start, end, n_frames, interval)


def episode_from_record(rec: dict, feats: np.ndarray) -> CaptionEpisode | None:
    """One episodes.jsonl record + its (n_frames, D) features -> CaptionEpisode (None without captions)."""
    caps = sorted(rec["captions"], key=lambda c: (c["start"], c["end"]))
    if not caps:
        return None
    feats = np.asarray(feats, dtype=np.float32)
    n = feats.shape[0]
    if n != rec["n_frames"]:
        raise ValueError(f"{rec['episode_id']} has {n} feature rows for {rec['n_frames']} frames")
    return CaptionEpisode(
        episode_id=rec["episode_id"],
        duration=float(rec["duration"]),
        features=feats,
        segments=[(float(c["start"]), float(c["end"])) for c in caps],
        clip_ranges=[frame_range(c["start"], c["end"], n) for c in caps],
        captions=[c["text"] for c in caps],
    )


def load_episodes(dirs: str | Path | Sequence[str | Path], limit: int | None = None) -> list[CaptionEpisode]:
    """Episodes with captions and features from one or more ``python -m synthtv generate`` directories."""
    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    out: list[CaptionEpisode] = []
    for d in dirs:
        d = Path(d)
        for line in (d / "episodes.jsonl").read_text().splitlines():
            if limit is not None and len(out) >= limit:
                return out
            rec = json.loads(line)
            if not rec.get("features"):
                continue
            ep = episode_from_record(rec, np.load(d / "features" / f"{rec['episode_id']}.npy"))
            if ep is not None:
                out.append(ep)
    return out


def load_fixture_episodes(path: str | Path, split: str = "train") -> list[CaptionEpisode]:
    """Episodes of the test fixture tests/data/synthtv_smoke.npz (real generator records + features)."""
    from training.data import fixture_splits

    recs, feats = fixture_splits(path)[split]
    eps = (episode_from_record(r, f) for r, f in zip(recs, feats))
    return [e for e in eps if e is not None]


# ---------------------------------------------------------------------------------------------------------
# text side: MiniLM token features, cached per set of sentences
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Paragraph:
    """token_feats (n_tokens, 384) of all sentences in order; sentence_ranges half-open token ranges."""

    token_feats: np.ndarray
    sentence_ranges: list[tuple[int, int]]


def paragraphs_from_token_feats(per_sentence: Sequence[np.ndarray], counts: Sequence[int]) -> list[Paragraph]:
    """Concatenate consecutive sentences' token features into paragraphs of ``counts`` sentences each."""
    out, k = [], 0
    for c in counts:
        feats = per_sentence[k : k + c]
        k += c
        ends = np.cumsum([f.shape[0] for f in feats])
        ranges = [(int(e - f.shape[0]), int(e)) for f, e in zip(feats, ends)]
        out.append(Paragraph(np.concatenate(feats, axis=0), ranges))
    return out


def episode_paragraphs(
    episodes: Sequence[CaptionEpisode], cache_dir: str | Path | None = None
) -> list[Paragraph]:
    """Each episode's captions as a COOT paragraph (MiniLM token features), cached on disk when asked."""
    from demo.text import token_features

    sentences = [c for ep in episodes for c in ep.captions]
    counts = [len(ep.captions) for ep in episodes]
    cache = None
    if cache_dir is not None:
        key = hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"minilm_tokens_{key}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                flat, lengths = z["feats"], z["lengths"]
            per = np.split(flat.astype(np.float32), np.cumsum(lengths)[:-1])
            return paragraphs_from_token_feats(per, counts)
    per = token_features(sentences)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([f.shape[0] for f in per])
        np.savez(cache, feats=np.concatenate(per).astype(np.float16), lengths=lengths)
    return paragraphs_from_token_feats(per, counts)


# ---------------------------------------------------------------------------------------------------------
# batching
# ---------------------------------------------------------------------------------------------------------


def pad_sequences(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of (T_i, D) -> (B, T_max, D) float32 zero-padded and (B, T_max) bool mask, True on real rows."""
    t_max = max(s.shape[0] for s in seqs)
    feats = torch.zeros(len(seqs), t_max, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
    for i, s in enumerate(seqs):
        feats[i, : s.shape[0]] = torch.from_numpy(np.asarray(s, dtype=np.float32))
        mask[i, : s.shape[0]] = True
    return feats, mask


def batches(n: int, batch_size: int, shuffle: bool, rng: random.Random | None = None) -> list[list[int]]:
    idx = list(range(n))
    if shuffle:
        (rng or random).shuffle(idx)
    return [idx[i : i + batch_size] for i in range(0, n, batch_size)]


def seed_everything(seed: int) -> random.Random:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return random.Random(seed)


class JsonLog:
    """Append-only JSON-lines log (one object per event) beside the run's outputs."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, **event) -> None:
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(event) + "\n")
