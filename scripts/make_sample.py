"""Make assets/sample.mp4: ~33 s of real photographs (scikit-image's bundled ones) with a narrated
speech track (eSpeak NG), H.264 + AAC, plus assets/sample_script.json (each line's text and timing,
and which photograph is on screen when). Deterministic: same packages -> same file.

    python scripts/make_sample.py [--out assets]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from synthtv.mp4 import write_mp4
from synthtv.tts import Voice, synthesize

W, H, FPS, SR = 640, 360, 12, 16_000

# (photo, seconds on screen, narration lines: (voice, text)). Lines describe what is shown, except one.
SCENES = [
    ("astronaut", 7.0, [("en-us+m3", "Here is an astronaut in a white suit, smiling in front of a flag.")]),
    ("chelsea", 6.5, [("en-us+f3", "Now a ginger cat looks straight at the camera.")]),
    ("coffee", 6.5, [("en-us+m3", "A cup of coffee sits on a saucer with a small spoon.")]),
    ("rocket", 7.0, [("en-us+f3", "The rocket stands on the launch pad, ready to fly to space.")]),
    ("hubble_deep_field", 6.0, [("en-us+m3", "Finally, thousands of distant galaxies fill the night sky.")]),
]


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _fit(img: np.ndarray, zoom: float) -> np.ndarray:
    """Letterbox `img` into W x H, scaled by `zoom` around the centre (a slow push-in)."""
    h, w = img.shape[:2]
    s = min(W / w, H / h) * zoom
    resized = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    canvas = np.full((H, W, 3), 16, np.uint8)
    rh, rw = resized.shape[:2]
    y0, x0 = (H - rh) // 2, (W - rw) // 2
    sy, sx = max(0, -y0), max(0, -x0)
    dy, dx = max(0, y0), max(0, x0)
    ch, cw = min(H - dy, rh - sy), min(W - dx, rw - sx)
    canvas[dy : dy + ch, dx : dx + cw] = resized[sy : sy + ch, sx : sx + cw]
    return canvas


def build(out_dir: Path) -> None:
    frames: list[np.ndarray] = []
    total = sum(d for _, d, _ in SCENES)
    audio = np.zeros(int(total * SR), np.float32)
    lines, shots, t = [], [], 0.0
    for name, dur, narration in SCENES:
        img = _photo(name)
        n = round(dur * FPS)
        frames.extend(_fit(img, 1.0 + 0.08 * k / n) for k in range(n))
        shots.append({"photo": name, "start": round(t, 3), "end": round(t + dur, 3)})
        at = t + 0.6
        for voice, text in narration:
            speech = synthesize(text, Voice(voice, rate=150))
            i = int(at * SR)
            audio[i : i + len(speech)] += speech[: len(audio) - i]
            lines.append(
                {"start": round(at, 3), "end": round(at + len(speech) / SR, 3), "voice": voice, "text": text}
            )
            at += len(speech) / SR + 0.4
        t += dur
    out_dir.mkdir(parents=True, exist_ok=True)
    write_mp4(out_dir / "sample.mp4", frames, FPS, audio * 0.8, SR)
    script = {
        "video": "sample.mp4",
        "duration": total,
        "size": [W, H],
        "fps": FPS,
        "lines": lines,
        "shots": shots,
    }
    (out_dir / "sample_script.json").write_text(json.dumps(script, indent=2) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets"))
    build(Path(ap.parse_args().out))
