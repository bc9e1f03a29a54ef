"""The visual world of a SynthTV episode: vocabulary, splits, and sampling of scenes, actors and events.

An episode is a list of scenes (each with a background) and a list of visual events (enter, leave, move,
grow, shrink, change colour, appear together), each with a [start, end] span; every actor has keyframes
from which `render.py` draws any frame at any time. Everything is drawn from one numpy Generator, so an
episode is a pure function of (split, seed, GENERATOR_VERSION).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GENERATOR_VERSION = "synthtv-1.0"
FRAME_INTERVAL = 1.5  # seconds per sampled frame (HERO)
MIN_DURATION, MAX_DURATION = 30.0, 120.0

# --- vocabulary -------------------------------------------------------------------------------------
# Photographs bundled in the scikit-image wheel (loaded offline). nouns[0] is the canonical name used in
# captions and answers; the other nouns give paraphrases (speech uses one, queries another).
PHOTOS: dict[str, tuple[str, ...]] = {
    "astronaut": ("astronaut", "space traveler", "woman in the space suit"),
    "cat": ("cat", "kitten", "tabby"),
    "coffee": ("coffee cup", "mug of coffee", "hot drink"),
    "rocket": ("rocket", "launch vehicle", "spaceship"),
    "coins": ("stack of coins", "coin pile", "handful of coins"),
    "cameraman": ("cameraman", "photographer", "man with the camera"),
    "moon": ("moon", "full moon", "lunar picture"),
    "galaxy": ("galaxy photo", "star field", "deep space picture"),
    "horse": ("horse", "pony", "stallion"),
    "clock": ("clock", "alarm clock", "timepiece"),
    "motorcycle": ("motorcycle", "motorbike", "two-wheeler"),
}
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "round shape", "round disk"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge", "three-sided shape"),
    "star": ("star", "star shape", "five-pointed star"),
    "diamond": ("diamond", "rhombus", "diamond shape"),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "pink": (245, 130, 190),
    "white": (245, 245, 245),
}
BACKGROUNDS = (
    "brick",
    "grass",
    "gravel",
    "night sky",
    "sunset",
    "grey studio",
    "teal studio",
    "beige room",
    "checkerboard",
)
ACTIONS = ("enter", "leave", "move", "grow", "shrink", "change_colour", "appear_together")
SIDES = ("left", "right", "top", "bottom")
DIRECTIONS = ("left", "right", "up", "down")
ALL_ACTORS = tuple(PHOTOS) + tuple(SHAPES)

# --- splits -----------------------------------------------------------------------------------------
# --seed-start N of split S is the absolute seed SPLIT_BASE[S] + N; train/val/test share one distribution.
SPLIT_BASE = {"train": 0, "val": 10_000_000, "test": 20_000_000, "comp": 30_000_000, "novel": 40_000_000}
SPLITS = tuple(SPLIT_BASE)
NOVEL_PHOTOS = ("horse", "clock", "motorcycle")  # never rendered outside the "novel" split
# Held-out combinations: never generated in train/val/test/novel, each "comp" episode has >= 1 of each.
HELD_OUT_ACTIONS = frozenset(
    {
        ("cat", "grow"),
        ("astronaut", "leave"),
        ("rocket", "shrink"),
        ("coffee", "move"),
        ("coins", "enter"),
        ("cameraman", "grow"),
        ("moon", "move"),
        ("galaxy", "shrink"),
        ("circle", "change_colour"),
        ("square", "leave"),
        ("triangle", "grow"),
        ("star", "enter"),
        ("diamond", "shrink"),
    }
)
# (speaker name, actor talked about); speaker names come from script.NAMES.
HELD_OUT_TOPICS = frozenset(
    {
        ("Maya", "cat"),
        ("Tom", "rocket"),
        ("Priya", "astronaut"),
        ("Leo", "circle"),
        ("Nora", "coffee"),
        ("Sam", "square"),
        ("Ivy", "moon"),
        ("Omar", "star"),
        ("Ruth", "coins"),
        ("Ben", "triangle"),
    }
)

N_SLOTS = 3
SLOT_X = (0.2, 0.5, 0.8)
BASE_SCALE = 0.32  # actor height as a fraction of frame height at scale 1


@dataclass
class Actor:
    id: str  # e.g. "cat", "circle": unique in an episode
    kind: str  # "photo" | "shape"
    colour: str | None = None  # shapes: colour at first appearance

    @property
    def nouns(self) -> tuple[str, ...]:
        return PHOTOS[self.id] if self.kind == "photo" else SHAPES[self.id]


@dataclass
class Event:
    id: int
    start: float
    end: float
    action: str
    actors: list[str]
    scene: int
    detail: dict = field(default_factory=dict)  # side / direction / from,to colours


@dataclass
class Scene:
    start: float
    end: float
    background: str


@dataclass
class Key:
    """An actor's state at time t; render interpolates linearly between consecutive keys of a track."""

    t: float
    x: float  # centre, fraction of width
    y: float  # centre, fraction of height
    scale: float
    colour: str | None
    alpha: float


@dataclass
class World:
    duration: float
    scenes: list[Scene]
    actors: dict[str, Actor]
    events: list[Event]
    tracks: dict[str, list[list[Key]]]  # actor id -> tracks (one per on-screen stint, time-ordered keys)

    def visible(self, actor: str, t0: float, t1: float | None = None) -> bool:
        """Whether the actor is on screen (alpha > 0, centre inside the frame) at t0 or anywhere in [t0, t1]."""
        t1 = t0 if t1 is None else t1
        for tr in self.tracks.get(actor, []):
            if tr[0].t <= t1 and tr[-1].t >= t0:
                return True
        return False

    def on_screen(self, t: float) -> list[str]:
        return [a for a in self.actors if self.visible(a, t)]


class _State:
    def __init__(self) -> None:
        self.slot: int | None = None
        self.x = self.y = 0.0
        self.scale = 1.0
        self.colour: str | None = None
        self.track: list[Key] | None = None


def allowed(split: str, actor: str, action: str) -> bool:
    return split == "comp" or (actor, action) not in HELD_OUT_ACTIONS


def sample_world(rng: np.random.Generator, split: str) -> World:
    """Sample one episode's visual content (retrying until the split's constraints hold)."""
    for _ in range(50):
        world = _sample_once(rng, split)
        if split != "comp" or any((a, e.action) in HELD_OUT_ACTIONS for e in world.events for a in e.actors):
            return world
    raise RuntimeError("could not satisfy the comp split's constraints")  # pragma: no cover


def _sample_once(rng: np.random.Generator, split: str) -> World:
    # A whole number of 1.5 s frames: every sampling centre then lies inside the video (no clamping).
    duration = FRAME_INTERVAL * int(
        rng.integers(int(MIN_DURATION / FRAME_INTERVAL), int(MAX_DURATION / FRAME_INTERVAL) + 1)
    )
    photos = [p for p in PHOTOS if split == "novel" or p not in NOVEL_PHOTOS]
    n_photo = int(rng.integers(2, 5))
    n_shape = int(rng.integers(1, 4))
    chosen = list(rng.choice(photos, size=n_photo, replace=False))
    if split == "novel" and not set(chosen) & set(NOVEL_PHOTOS):
        chosen[0] = str(rng.choice(NOVEL_PHOTOS))
    actors: dict[str, Actor] = {str(p): Actor(str(p), "photo") for p in chosen}
    for s in rng.choice(list(SHAPES), size=n_shape, replace=False):
        actors[str(s)] = Actor(str(s), "shape", str(rng.choice(list(COLOURS))))

    # scenes: 2-5, each >= 10 s, cut on the 0.5 s grid
    n_scenes = int(np.clip(round(duration / float(rng.uniform(14, 28))), 2, 5))
    cuts = np.sort(rng.choice(np.arange(1, int(duration * 2)), size=n_scenes - 1, replace=False)) / 2
    bounds = [0.0, *[float(c) for c in cuts], duration]
    if min(np.diff(bounds)) < 8.0:  # fall back to equal scenes
        bounds = [round(duration * i / n_scenes * 2) / 2 for i in range(n_scenes + 1)]
    backgrounds = rng.permutation(len(BACKGROUNDS))
    scenes = [
        Scene(bounds[i], bounds[i + 1], BACKGROUNDS[int(backgrounds[i % len(BACKGROUNDS)])])
        for i in range(n_scenes)
    ]

    events: list[Event] = []
    tracks: dict[str, list[list[Key]]] = {a: [] for a in actors}
    colour_now = {a: act.colour for a, act in actors.items()}
    for si, sc in enumerate(scenes):
        _sample_scene(rng, split, si, sc, actors, colour_now, events, tracks)
    return World(duration, scenes, actors, events, tracks)


def _key(st: _State, t: float, alpha: float = 1.0) -> Key:
    return Key(round(t, 3), st.x, st.y, st.scale, st.colour, alpha)


def _offscreen(side: str, slot_x: float) -> tuple[float, float]:
    return {"left": (-0.25, 0.5), "right": (1.25, 0.5), "top": (slot_x, -0.3), "bottom": (slot_x, 1.3)}[side]


def _sample_scene(rng, split, si, sc: Scene, actors, colour_now, events, tracks) -> None:
    states = {a: _State() for a in actors}
    ids = list(actors)

    def free_slots() -> list[int]:
        used = {s.slot for s in states.values() if s.slot is not None}
        return [i for i in range(N_SLOTS) if i not in used]

    def place(a: str, slot: int, t: float, alpha: float = 1.0) -> None:
        st = states[a]
        st.slot, st.x, st.y, st.scale, st.colour = slot, SLOT_X[slot], 0.5, 1.0, colour_now[a]
        st.track = [_key(st, t, alpha)]

    # 0-2 actors already on screen when the scene starts
    for a in rng.permutation(ids)[: int(rng.integers(0, 3))]:
        place(str(a), int(rng.choice(free_slots())), sc.start)

    t = round(sc.start + float(rng.uniform(0.5, 2.0)), 1)
    while True:
        on = [a for a in ids if states[a].slot is not None]
        off = [a for a in ids if states[a].slot is None]
        options: list[tuple[str, list[str]]] = []
        if off and free_slots():
            options += [("enter", [a]) for a in off]
        if len(off) >= 2 and len(free_slots()) >= 2:
            pairs = [(off[i], off[j]) for i in range(len(off)) for j in range(i + 1, len(off))]
            options += [("appear_together", list(p)) for p in pairs]
        for a in on:
            st = states[a]
            options.append(("leave", [a]))
            options.append(("move", [a]))
            if st.scale < 1.2:
                options.append(("grow", [a]))
            if st.scale > 0.8:
                options.append(("shrink", [a]))
            if actors[a].kind == "shape":
                options.append(("change_colour", [a]))
        options = [(act, aa) for act, aa in options if all(allowed(split, a, act) for a in aa)]
        if not options:
            break
        weights = np.array([2.0 if split == "comp" and _held(act, aa) else 1.0 for act, aa in options])
        action, who = options[int(rng.choice(len(options), p=weights / weights.sum()))]
        dur = float(rng.choice([2.5, 3.0, 3.5, 4.0, 4.5]))
        if t + dur > sc.end - 0.5:
            break
        detail = _apply(rng, action, who, t, t + dur, states, free_slots, place, colour_now)
        if detail is None:  # e.g. no room to move; try another time
            t += 0.5
            continue
        events.append(Event(len(events), round(t, 3), round(t + dur, 3), action, who, si, detail))
        for a in who:
            if states[a].slot is None and states[a].track is not None:
                tracks[a].append(states[a].track)
                states[a].track = None
        t = round(t + dur + float(rng.uniform(0.5, 2.5)), 1)
    for a in ids:  # scene cut: whoever is still on screen disappears with the scene
        st = states[a]
        if st.track is not None:
            st.track.append(_key(st, sc.end - 1e-3))
            tracks[a].append(st.track)


def _held(action: str, who: list[str]) -> bool:
    return any((a, action) in HELD_OUT_ACTIONS for a in who)


def _apply(rng, action, who, t0, t1, states, free_slots, place, colour_now) -> dict | None:
    """Append the keyframes of one action; returns the event's detail, or None when it cannot happen."""
    if action == "enter":
        a = who[0]
        slot = int(rng.choice(free_slots()))
        side = str(rng.choice(SIDES))
        place(a, slot, t0)
        st = states[a]
        x0, y0 = _offscreen(side, SLOT_X[slot])
        st.track = [Key(round(t0, 3), x0, y0, 1.0, st.colour, 1.0)]
        st.track.append(_key(st, t1))
        return {"side": side}
    if action == "appear_together":
        for a in who:
            slot = int(rng.choice(free_slots()))
            place(a, slot, t0, alpha=0.0)
            states[a].track.append(_key(states[a], t0 + min(1.0, t1 - t0)))
        return {}
    st = states[who[0]]
    st.track.append(_key(st, t0))
    if action == "leave":
        side = str(rng.choice(SIDES))
        st.x, st.y = _offscreen(side, st.x)
        st.track.append(_key(st, t1))
        st.slot = None
        return {"side": side}
    if action == "move":
        choices = []
        if st.y > 0.4:
            choices.append("up")
        if st.y < 0.6:
            choices.append("down")
        for d, ds in (("left", -1), ("right", 1)):
            ns = st.slot + ds
            if 0 <= ns < N_SLOTS and ns in free_slots():
                choices.append(d)
        if not choices:
            st.track.pop()
            return None
        d = str(rng.choice(choices))
        if d in ("up", "down"):
            st.y = 0.5 + (-0.22 if d == "up" else 0.22) * (1 if abs(st.y - 0.5) < 0.01 else 0)
        else:
            st.slot += -1 if d == "left" else 1
            st.x = SLOT_X[st.slot]
        st.track.append(_key(st, t1))
        return {"direction": d}
    if action in ("grow", "shrink"):
        if action == "grow":
            st.scale = 1.0 if st.scale < 0.8 else 1.5
        else:
            st.scale = 1.0 if st.scale > 1.2 else 0.6
        st.track.append(_key(st, t1))
        return {}
    if action == "change_colour":
        old = st.colour
        st.colour = str(rng.choice([c for c in COLOURS if c != old]))
        colour_now[who[0]] = st.colour
        st.track.append(_key(st, t1))
        return {"from": old, "to": st.colour}
    raise ValueError(action)
