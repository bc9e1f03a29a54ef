"""One SynthTV episode from (split, seed): the World (for rendering) and its annotation record (JSON)."""

from __future__ import annotations

import math
import zlib

import numpy as np

from synthtv.script import Script
from synthtv.world import FRAME_INTERVAL, GENERATOR_VERSION, SPLIT_BASE, SPLITS, World, sample_world


def episode_id(split: str, seed: int) -> str:
    return f"{split}-{seed:07d}"


def n_frames(duration: float, interval: float = FRAME_INTERVAL) -> int:
    """Frames i covering [i*dt, (i+1)*dt) that start before the end (as demo.video.frame_times)."""
    return max(1, math.ceil(duration / interval - 1e-9))


def sample_times(duration: float, interval: float = FRAME_INTERVAL) -> np.ndarray:
    return (np.arange(n_frames(duration, interval)) + 0.5) * interval


def rng_for(split: str, seed: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if seed < 0 or seed >= 10_000_000:
        raise ValueError("seed must be in [0, 10,000,000)")
    return np.random.default_rng([zlib.crc32(GENERATOR_VERSION.encode()), SPLIT_BASE[split] + seed])


def build_episode(split: str, seed: int) -> tuple[dict, World]:
    """The annotation record (see synthtv/SCHEMA.md) and the World it describes."""
    rng = rng_for(split, seed)
    for _ in range(50):
        world = sample_world(rng, split)
        try:
            ann = Script(rng, world, split).build()
        except ValueError:  # comp constraints could not be met with this world: draw another
            continue
        break
    else:  # pragma: no cover
        raise RuntimeError(f"could not build {split} episode {seed}")
    record = {
        "episode_id": episode_id(split, seed),
        "split": split,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "duration": world.duration,
        "frame_interval": FRAME_INTERVAL,
        "n_frames": n_frames(world.duration),
        "actors": [
            {"id": a.id, "kind": a.kind, "nouns": list(a.nouns), "colour": a.colour}
            for a in world.actors.values()
        ],
        "scenes": [{"start": s.start, "end": s.end, "background": s.background} for s in world.scenes],
        "events": [
            {
                "id": e.id,
                "start": e.start,
                "end": e.end,
                "action": e.action,
                "actors": e.actors,
                "scene": e.scene,
                "detail": e.detail,
            }
            for e in world.events
        ],  # fmt: skip
        **ann,
    }
    for s in record["subtitles"]:
        s.pop("nouns", None)
    return record, world
