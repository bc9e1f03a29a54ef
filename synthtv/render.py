"""Draw SynthTV frames: a scene background plus actors (bundled photographs, filled shapes) at any size/time.

`render_frame(world, t, width, height)` is a pure function of its arguments, so the frames sampled for
features-only mode are exactly the frames the video writer encodes at the same times.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from functools import cache, lru_cache

import cv2
import numpy as np

from synthtv.world import BASE_SCALE, COLOURS, World

PHOTO_LOADERS = {  # actor id -> skimage.data function (only images shipped inside the wheel)
    "astronaut": "astronaut",
    "cat": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "coins": "coins",
    "cameraman": "camera",
    "moon": "moon",
    "galaxy": "hubble_deep_field",
    "horse": "horse",
    "clock": "clock",
    "motorcycle": "stereo_motorcycle",
}
BG_SOLID = {
    "grey studio": ((70, 70, 75), (130, 130, 135)),
    "teal studio": ((20, 90, 95), (60, 150, 150)),
    "beige room": ((200, 180, 150), (150, 130, 105)),
    "sunset": ((250, 170, 80), (90, 40, 110)),
    "night sky": ((5, 10, 35), (25, 35, 80)),
}
BG_TEXTURE = {  # name -> (skimage.data function, RGB tint)
    "brick": ("brick", (1.0, 0.55, 0.4)),
    "grass": ("grass", (0.45, 0.85, 0.35)),
    "gravel": ("gravel", (0.8, 0.78, 0.72)),
    "checkerboard": ("checkerboard", (0.6, 0.7, 0.9)),
}
BORDER = 3  # white photo border (px at sprite scale)


@cache
def photo(actor: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, alpha float32 mask) of a photograph actor."""
    import skimage.data

    img = getattr(skimage.data, PHOTO_LOADERS[actor])()
    if actor == "motorcycle":
        img = img[0]
    if actor == "horse":  # a boolean silhouette (True = background): paint it as a brown horse
        mask = (~img).astype(np.float32)
        rgb = np.empty((*img.shape, 3), np.uint8)
        rgb[:] = (120, 72, 35)
        return rgb, mask
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]), np.ones(img.shape[:2], np.float32)


@lru_cache(maxsize=64)
def background(name: str, width: int, height: int) -> np.ndarray:
    if name in BG_SOLID:
        top, bottom = (np.array(c, np.float32) for c in BG_SOLID[name])
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).copy()
        if name == "night sky":  # fixed stars (seeded by the name, not by the episode)
            r = np.random.default_rng(zlib.crc32(name.encode()))
            n = width * height // 900
            ys, xs = r.integers(0, height, n), r.integers(0, width, n)
            img[ys, xs] = 230
        return img.clip(0, 255).astype(np.uint8)
    import skimage.data

    fn, tint = BG_TEXTURE[name]
    tex = getattr(skimage.data, fn)().astype(np.float32)
    tex = cv2.resize(tex, (width, height), interpolation=cv2.INTER_AREA)
    return (tex[..., None] * np.array(tint, np.float32)).clip(0, 255).astype(np.uint8)


@lru_cache(maxsize=512)
def sprite(actor: str, kind: str, height_px: int, colour: tuple[int, int, int] | None):
    """(RGB float32 (h, w, 3), alpha float32 (h, w, 1)) of an actor drawn `height_px` tall."""
    h = max(4, height_px)
    if kind == "photo":
        rgb, mask = photo(actor)
        w = max(4, round(h * rgb.shape[1] / rgb.shape[0]))
        img = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        a = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
        if actor != "horse":
            b = max(1, round(BORDER * h / 120))
            img[:b], img[-b:], img[:, :b], img[:, -b:] = 255, 255, 255, 255
        return img, a[..., None]
    w = h
    ss = 4  # supersampling for smooth edges
    m = np.zeros((h * ss, w * ss), np.uint8)
    c, r = (w * ss / 2, h * ss / 2), h * ss / 2 * 0.95
    if actor == "circle":
        cv2.circle(m, (round(c[0]), round(c[1])), round(r), 255, -1)
    else:
        if actor == "square":
            ang = np.deg2rad([45, 135, 225, 315])
            rad = np.full(4, r * 1.0)
        elif actor == "triangle":
            ang = np.deg2rad([-90, 30, 150])
            rad = np.full(3, r)
        elif actor == "diamond":
            ang = np.deg2rad([-90, 0, 90, 180])
            rad = np.array([r, r * 0.65, r, r * 0.65])
        else:  # star
            ang = np.deg2rad(np.arange(10) * 36 - 90)
            rad = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
        pts = np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], 1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255)
    a = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    return img, a[..., None]


def _blit(frame: np.ndarray, img: np.ndarray, a: np.ndarray, cx: float, cy: float, alpha: float) -> None:
    h, w = img.shape[:2]
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sub_img = img[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    sub_a = a[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] * alpha
    roi = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (roi * (1 - sub_a) + sub_img * sub_a + 0.5).astype(np.uint8)


def _lerp(p, q, u: float):
    return p + (q - p) * u


def _state(track, t: float):
    """Linear interpolation of (x, y, scale, colour, alpha) in a key track at time t."""
    for k0, k1 in zip(track, track[1:]):
        if k0.t <= t <= k1.t:
            u = 0.0 if k1.t == k0.t else (t - k0.t) / (k1.t - k0.t)
            u = u * u * (3 - 2 * u)  # ease in/out
            col = None
            if k0.colour is not None:
                c0, c1 = np.array(COLOURS[k0.colour], np.float32), np.array(COLOURS[k1.colour], np.float32)
                col = tuple(int(round(v)) for v in _lerp(c0, c1, u))
            return (_lerp(k0.x, k1.x, u), _lerp(k0.y, k1.y, u), _lerp(k0.scale, k1.scale, u), col,
                    _lerp(k0.alpha, k1.alpha, u))  # fmt: skip
    return None


def render_frame(world: World, t: float, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB frame of `world` at time t seconds."""
    scene = next((s for s in world.scenes if s.start <= t < s.end), world.scenes[-1])
    frame = background(scene.background, width, height).copy()
    for a, actor in world.actors.items():
        for track in world.tracks[a]:
            if not (track[0].t <= t <= track[-1].t):
                continue
            st = _state(track, t)
            if st is None:
                continue
            x, y, scale, col, alpha = st
            if alpha <= 0.0:
                continue
            hpx = int(round(BASE_SCALE * scale * height / 2)) * 2
            img, am = sprite(a, actor.kind, hpx, col)
            _blit(frame, img, am, x * width, y * height, alpha)
    return frame


def render_frames(world: World, times, width: int, height: int) -> np.ndarray:
    """(N, height, width, 3) uint8 frames at `times` seconds."""
    return np.stack([render_frame(world, float(t), width, height) for t in times])


def iter_video_frames(world: World, fps: float, width: int, height: int) -> Iterator[np.ndarray]:
    """Every video frame k at time k / fps for k < duration * fps."""
    n = int(round(world.duration * fps))
    for k in range(n):
        yield render_frame(world, k / fps, width, height)
