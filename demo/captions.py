"""Dense captions for a VideoRecord: segment proposals, COOT + MART captions, chapters (WebVTT / JSON).

- ``propose_segments(record)``: scene changes (cosine distance between consecutive frame features),
  split further at subtitle gaps when long, merged when short; deterministic.
- ``caption_video(record, segments=None)``: one sentence per segment in time order. The COOT video
  embedding comes from the whole video (its proposed segments), the clip embedding from each requested
  segment, so a single user- or search-picked moment is captioned in the context of its video; MART's
  memory runs over the requested segments in time order; decoding: ``DECODING``.
- ``load_coot``, ``video_embeddings``, ``text_embeddings``: COOT alone (the COOT first stages of library
  search, measured against the others).
- ``chapters_vtt(captions)``, ``captions_json(captions)``: the exports.
The shipped checkpoints (assets/coot, assets/mart) load once per process; COOT is cheap enough to run
per call (milliseconds for a few minutes of video), so nothing is cached in the record.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from demo.errors import InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_COOT = ASSETS / "coot"
DEFAULT_MART = ASSETS / "mart"
# MART's official beam of 2, no bigram twice in a sentence, no 4-gram an earlier caption of the video said:
# on SynthTV test / comp this beats greedy decoding on BLEU-4, METEOR, ROUGE-L and CIDEr-D and cuts the
# repetition R@4 from ~0.7 to ~0.03 (training/CAPTION_RESULTS.md).
DECODING = dict(method="beam", beam_size=2, block_ngram_repeat=2, block_ngram_across=4)


@dataclass(frozen=True)
class Caption:
    start: float  # seconds
    end: float  # seconds
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------
# segments
# ---------------------------------------------------------------------------------------------------------


def frame_range(start: float, end: float, n_frames: int, interval: float) -> tuple[int, int]:
    """Half-open range of the frames that [start, end) seconds overlaps (frame i covers
    [i * interval, (i + 1) * interval)); never empty."""
    first = min(max(math.floor(start / interval + 1e-9), 0), n_frames - 1)
    last = min(max(math.ceil(end / interval - 1e-9), first + 1), n_frames)
    return first, last


def frame_distances(features: np.ndarray) -> np.ndarray:
    """(n_frames - 1,) cosine distance between consecutive frame features."""
    f = np.asarray(features, dtype=np.float32)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return 1.0 - (f[1:] * f[:-1]).sum(axis=1)


def scene_cuts(features: np.ndarray, min_distance: float = 0.15, rel: float = 4.0) -> np.ndarray:
    """Indices i where a cut lies between frame i and i + 1: the distance is at least ``min_distance``
    and an outlier (> median + rel * MAD-sigma) among the video's consecutive distances."""
    d = frame_distances(features)
    if d.size == 0:
        return np.zeros(0, dtype=int)
    med = float(np.median(d))
    sigma = 1.4826 * float(np.median(np.abs(d - med)))
    return np.flatnonzero((d >= min_distance) & (d > med + rel * sigma))


def _subtitle_points(subtitles, lo: float, hi: float) -> list[float]:
    """Split points that cut no subtitle: the middle of each gap between consecutive subtitles."""
    subs = sorted(subtitles, key=lambda s: (s.start, s.end))
    pts, reach = [], None
    for s in subs:
        if reach is not None and s.start > reach:
            pts.append((reach + s.start) / 2)
        reach = s.end if reach is None else max(reach, s.end)
    return [p for p in pts if lo < p < hi]


def _boundary_strength(t: float, dist: np.ndarray, interval: float) -> float:
    """Feature change at time t: the distance between the frames on either side of it."""
    i = int(round(t / interval)) - 1
    return float(dist[i]) if 0 <= i < dist.size else 0.0


def propose_segments(record, min_len: float = 3.0, max_len: float = 30.0) -> list[tuple[float, float]]:
    """Segments covering the whole video, each min_len..max_len seconds long (a video shorter than
    min_len is one segment): scene cuts first, long scenes split at subtitle gaps (else at the strongest
    feature change, else in the middle), short pieces merged across their weakest boundary."""
    if min_len <= 0 or max_len < 2 * min_len:
        raise ValueError("need 0 < min_len and max_len >= 2 * min_len")
    dt = float(record.frame_interval)
    duration = float(record.meta.duration)
    feats = np.asarray(record.features)
    dist = frame_distances(feats)
    bounds = [0.0] + [min((i + 1) * dt, duration) for i in scene_cuts(feats)] + [duration]
    bounds = sorted(set(bounds))

    # split long pieces (recursively, one point at a time, keeping both sides >= min_len)
    out: list[float] = [bounds[0]]
    stack = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])][::-1]
    while stack:
        a, b = stack.pop()
        if b - a <= max_len:
            out.append(b)
            continue
        lo, hi = a + min_len, b - min_len  # both sides keep min_len
        centre = (a + b) / 2
        subs = [t for t in _subtitle_points(record.subtitles, a, b) if lo <= t <= hi]
        frames = [k * dt for k in range(math.ceil(a / dt) + 1, math.floor(b / dt)) if lo <= k * dt <= hi]
        if subs:  # the gap closest to the middle, ties to the earlier
            t = min(subs, key=lambda t: (abs(t - centre), t))
        elif frames:  # the strongest visual change, favouring the middle
            t = max(frames, key=lambda t: (_boundary_strength(t, dist, dt) - 1e-3 * abs(t - centre), -t))
        else:
            t = centre
        stack.extend([(t, b), (a, t)])

    # merge short pieces across their weaker side
    bounds = out
    while len(bounds) > 2:
        lens = np.diff(bounds)
        short = [k for k, n in enumerate(lens) if n < min_len - 1e-9]
        if not short:
            break
        k = min(short, key=lambda k: (lens[k], k))  # shortest first
        left = bounds[k] if k > 0 else None  # interior boundary on each side
        right = bounds[k + 1] if k + 1 < len(bounds) - 1 else None
        cands = [t for t in (left, right) if t is not None]
        drop = min(cands, key=lambda t: (_boundary_strength(t, dist, dt), t))
        merged = [t for t in bounds if t != drop]
        if max(np.diff(merged)) > max_len and len(cands) == 2:  # the other side keeps it under max_len
            other = right if drop == left else left
            merged = [t for t in bounds if t != other]
        bounds = merged
    return [(round(float(a), 3), round(float(b), 3)) for a, b in zip(bounds[:-1], bounds[1:])]


def parse_segments(text: str) -> list[tuple[float, float]]:
    """ "s-e,s-e" in seconds -> [(s, e), ...]; InputError on anything else."""
    out = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)", part)
        if not m:
            raise InputError(f"--segments {text!r}: expected 'start-end,start-end' in seconds, got {part!r}")
        s, e = float(m.group(1)), float(m.group(2))
        if not e > s:
            raise InputError(f"--segments {text!r}: segment {part!r} must end after it starts")
        out.append((s, e))
    if not out:
        raise InputError(f"--segments {text!r}: no segment given")
    return out


def _check_segments(record, segments: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    duration = float(record.meta.duration)
    segs = []
    for s, e in segments:
        s, e = float(s), float(e)
        if not (e > s and s < duration and e > 0):
            raise InputError(f"segment {s:g}-{e:g} s is empty or outside the video (0-{duration:g} s)")
        segs.append((max(s, 0.0), min(e, duration)))
    return sorted(segs)


# ---------------------------------------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------------------------------------


@contextmanager
def _one_thread():
    """COOT / MART calls here are small: on a shared CPU, OpenMP threads spin-wait more than they
    compute (measured: 0.5 s with one thread, 3-6 s with two for the sample video's captions)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@lru_cache(maxsize=2)
def load_captioner(coot_dir: str | None = None, mart_dir: str | None = None):
    """(COOT, MART) in eval mode, from the shipped assets unless given (env HEROVID_COOT / HEROVID_MART)."""
    import torch  # noqa: F401

    from models.io import load_pretrained

    coot = load_coot(coot_dir)  # shared with library search: loaded once per process
    mart_dir = mart_dir or os.environ.get("HEROVID_MART") or str(DEFAULT_MART)
    try:
        mart = load_pretrained(mart_dir).eval()
    except (OSError, ValueError) as e:
        raise InputError(f"MART checkpoint {mart_dir} unusable: {e}") from None
    expected = 2 * coot.config.hidden_dim + coot.config.hidden_dim
    if mart.config.video_feature_size != expected:
        raise InputError(
            f"{mart_dir}: MART expects {mart.config.video_feature_size}-d input, COOT gives {expected}"
        )
    return coot, mart


@lru_cache(maxsize=2)
def load_coot(coot_dir: str | None = None):
    """COOT alone in eval mode (library search needs no MART), from the shipped asset unless given."""
    from models.io import load_pretrained, resolve_model_dir

    coot_dir = coot_dir or os.environ.get("HEROVID_COOT") or str(DEFAULT_COOT)
    try:
        path = resolve_model_dir(coot_dir)
        coot = load_pretrained(path).eval()
        # what made a library index's COOT rows: the weights' bytes (a retrained COOT re-indexes)
        coot.key = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:12]
    except (OSError, ValueError) as e:
        raise InputError(f"COOT checkpoint {coot_dir} unusable: {e}") from None
    return coot


def video_embeddings(coot, record) -> tuple[np.ndarray, np.ndarray]:
    """COOT over the video's proposed segments: (video embedding (2 * hidden,), clip embeddings
    (n_segments, hidden)), both float32."""
    import torch

    feats = torch.from_numpy(np.asarray(record.features, dtype=np.float32))[None]  # (1, T, D)
    n, dt = feats.shape[1], float(record.frame_interval)
    ranges = [frame_range(s, e, n, dt) for s, e in propose_segments(record)]
    with torch.no_grad(), _one_thread():
        out = coot.encode_video(feats, None, [ranges])
    return out.vid_emb[0].numpy(), out.clip_emb.numpy()


def text_embeddings(coot, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """COOT over each text as a one-sentence paragraph: (paragraph embeddings (n, 2 * hidden), sentence
    embeddings (n, hidden)), float32; the words are MiniLM token states as in training."""
    import torch

    from demo.text import token_features

    toks = token_features(list(texts))
    pars, sents = [], []
    with torch.no_grad(), _one_thread():
        for s in range(0, len(toks), 64):
            chunk = toks[s : s + 64]
            t_max = max(t.shape[0] for t in chunk)
            x = torch.zeros(len(chunk), t_max, chunk[0].shape[1])  # (B, T, 384)
            m = torch.zeros(len(chunk), t_max, dtype=torch.bool)
            for i, t in enumerate(chunk):
                x[i, : len(t)], m[i, : len(t)] = torch.from_numpy(t), True
            out = coot.encode_text(x, m, [[(0, len(t))] for t in chunk])
            pars.append(out.par_emb.numpy())
            sents.append(out.sent_emb.numpy())
    d = coot.config.hidden_dim
    if not pars:
        return np.zeros((0, 2 * d), np.float32), np.zeros((0, d), np.float32)
    return np.concatenate(pars), np.concatenate(sents)


def tidy_sentence(text: str) -> str:
    """MART's space-separated lower-case words -> a sentence (capitalised, no space before punctuation)."""
    text = re.sub(r"\s+([.,!?;:'])", r"\1", text.strip())
    return text[:1].upper() + text[1:] if text else text


def segment_features(coot, record, segments: Sequence[tuple[float, float]]) -> np.ndarray:
    """(S, 1152) COOT+MART inputs: [video embedding of the whole video ; clip embedding of each segment]."""
    import torch

    feats = torch.from_numpy(np.asarray(record.features, dtype=np.float32))[None]  # (1, T, D)
    n, dt = feats.shape[1], float(record.frame_interval)
    whole = [frame_range(s, e, n, dt) for s, e in propose_segments(record)]
    asked = [frame_range(s, e, n, dt) for s, e in segments]
    with torch.no_grad():
        vid = coot.encode_video(feats, None, [whole]).vid_emb[0]  # (768,)
        clips = coot.encode_video(feats, None, [asked]).clip_emb  # (S, 384)
    return torch.cat([vid.expand(clips.shape[0], -1), clips], dim=1).numpy()


def caption_video(
    record,
    segments: Sequence[tuple[float, float]] | None = None,
    coot_dir: str | None = None,
    mart_dir: str | None = None,
) -> list[Caption]:
    """One caption per segment (proposed when None), in time order."""
    import torch

    from models.mart_decoding import DecodingOptions, caption_segments

    segs = propose_segments(record) if segments is None else _check_segments(record, segments)
    with _one_thread():
        coot, mart = load_captioner(coot_dir, mart_dir)
        x = torch.from_numpy(segment_features(coot, record, segs))
        texts = caption_segments(mart, mart.config.get_vocab(), x, DecodingOptions(**DECODING))
    return [Caption(s, e, tidy_sentence(t)) for (s, e), t in zip(segs, texts)]


def chapters_vtt(captions: Sequence[Caption]) -> str:
    """WebVTT chapters track, one cue per caption."""
    from demo.subtitles import Subtitle, to_vtt

    return to_vtt([Subtitle(c.start, c.end, c.text) for c in captions], kind="chapters")


def captions_json(captions: Sequence[Caption]) -> dict:
    return {"segments": [c.to_dict() for c in captions]}
