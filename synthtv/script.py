"""Dialogue and gold annotations of a SynthTV episode: subtitles, moment queries, 5-way QA, dense captions.

Speech lines describe what is on screen ("now"), announce an event before it happens ("preview"), recall
one afterwards ("recall"), mention things never shown ("offscreen"), or react ("reaction": one generic
sentence said twice, at two different visual events, so that only video + subtitles locate each).
Queries and questions never copy a line: they use another noun for the actor and other verbs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from synthtv.world import ALL_ACTORS, COLOURS, HELD_OUT_ACTIONS, HELD_OUT_TOPICS, NOVEL_PHOTOS, SHAPES, World

# The eSpeak NG voices Whisper base transcribes best (measured: word-perfect at 140 wpm; the others
# and faster rates confuse right/light, rhombus, violin). American spelling, as Whisper writes it.
VOICES = ("en-us+m3", "en-us+f3", "en-us+m1", "en-us+f4")
NAMES = ("Maya", "Tom", "Priya", "Leo", "Nora", "Sam", "Ivy", "Omar", "Ruth", "Ben", "Zoe", "Max")
RELATIVES = ("sister", "brother", "uncle", "aunt", "neighbor", "cousin", "grandmother", "best friend")
THINGS = (  # (spoken noun, paraphrase)
    ("piano", "keyboard instrument"),
    ("umbrella", "brolly"),
    ("guitar", "six-string instrument"),
    ("sailboat", "small boat"),
    ("tent", "camping shelter"),
    ("kite", "flying toy"),
    ("sofa", "couch"),
    ("violin", "fiddle"),
    ("telescope", "stargazing scope"),
    ("backpack", "rucksack"),
    ("lamp", "reading light"),
    ("bicycle", "pedal cycle"),
    ("puppy", "young dog"),
    ("painting", "picture for the wall"),
)
VERBS = (  # (spoken past tense, paraphrase)
    ("bought", "purchased"),
    ("lost", "misplaced"),
    ("sold", "got rid of"),
    ("fixed", "repaired"),
    ("found", "came across"),
    ("painted", "repainted"),
)
REACTIONS = (  # (spoken, paraphrase used in queries and answers)
    ("Wow, I did not expect that.", "a speaker is surprised"),
    ("Ha, that is so funny.", "someone finds it amusing"),
    ("I really love this part.", "a speaker says they enjoy this bit"),
    ("Wait, what just happened?", "someone sounds confused"),
    ("That was really quick.", "a speaker comments on how fast it was"),
    ("Now this is getting exciting.", "someone says it is thrilling"),
)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven")
SIDE = {"left": "left", "right": "right", "top": "top", "bottom": "bottom"}
DIR_SPOKEN = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
DIR_PARA = {"left": "leftward", "right": "rightward", "up": "higher up", "down": "lower down"}

# Spoken forms ({s}: subject noun phrase). "now" lines are full sentences.
LINE_NOW = {
    "enter": ("Look, {s} is coming in from the {side}.", "Here comes {s}, from the {side}."),
    "leave": ("{S} is leaving towards the {side}.", "There goes {s}, off to the {side}."),
    "move": ("{S} is sliding {dir}.", "Now {s} is going {dir}."),
    "grow": ("{S} is getting bigger.", "Look how large {s} is becoming."),
    "shrink": ("{S} is getting smaller.", "Oh, {s} is shrinking."),
    "change_colour": ("{S} is turning {to}.", "Look, {s} is changing to {to}."),
    "appear_together": ("{S} just showed up together.", "Look, {s} appear at once."),
}
INF = {
    "enter": "come in from the {side}",
    "leave": "leave towards the {side}",
    "move": "slide {dir}",
    "grow": "get bigger",
    "shrink": "get smaller",
    "change_colour": "turn {to}",
    "appear_together": "show up together",
}
PAST = {
    "enter": "came in from the {side}",
    "leave": "left towards the {side}",
    "move": "slid {dir}",
    "grow": "got bigger",
    "shrink": "got smaller",
    "change_colour": "turned {to}",
    "appear_together": "showed up together",
}
LINE_PREVIEW = ("In a moment, {s} will {inf}.", "Keep watching, soon {s} will {inf}.")
LINE_RECALL = ("Earlier, {s} {past}.", "Remember when {s} {past}?")
LINE_OFFSCREEN = (
    "My {rel} {verb} a {thing} last week.",
    "Did I tell you my {rel} {verb} a {thing}?",
    "You know, my {rel} {verb} a {thing} yesterday.",
)
# Paraphrases for queries and questions ({p}: paraphrased subject; third person singular unless plural).
VP = {  # present simple verb phrase
    "enter": ("enters from the {side} side", "moves into view from the {side}"),
    "leave": ("exits the screen on the {side}", "disappears off the {side} edge"),
    "move": ("shifts {dirp}", "travels {dirp} across the screen"),
    "grow": ("increases in size", "becomes larger"),
    "shrink": ("decreases in size", "becomes much smaller"),
    "change_colour": ("switches from {frm} to {to}", "gets recoloured {to}"),
    "appear_together": ("pop into view at the same moment", "appear simultaneously"),
}
INF_P = {
    "enter": "enter the frame from the {side}",
    "leave": "exit on the {side}",
    "move": "shift {dirp}",
    "grow": "become larger",
    "shrink": "become smaller",
    "change_colour": "switch to {to}",
    "appear_together": "pop up together",
}
PAST_P = {
    "enter": "entered from the {side}",
    "leave": "exited on the {side}",
    "move": "shifted {dirp}",
    "grow": "became larger",
    "shrink": "became smaller",
    "change_colour": "switched to {to}",
    "appear_together": "popped up together",
}
Q_PREVIEW = ("Someone predicts that {p} is about to {inf}.", "A speaker announces that {p} will soon {inf}.")
Q_RECALL = ("Someone remembers that {p} {past} earlier.", "A speaker refers back to when {p} {past}.")
Q_OFFSCREEN = (
    "Someone mentions that their {rel} {verb} a {thing}.",
    "A speaker talks about a {rel} who {verb} a {thing}.",
)
CAPTION = {
    "enter": ("{C} enters from the {side}.", "{C} slides in from the {side}.", "From the {side}, {c} comes into view."),
    "leave": ("{C} leaves to the {side}.", "{C} exits towards the {side}.", "{C} moves out of the frame on the {side}."),
    "move": ("{C} moves {dir}.", "{C} glides {dir}.", "{C} shifts {dir} on the screen."),
    "grow": ("{C} grows larger.", "{C} gets bigger.", "{C} expands."),
    "shrink": ("{C} shrinks.", "{C} gets smaller.", "{C} becomes small."),
    "change_colour": (
        "{C} changes colour from {frm} to {to}.",
        "{C} turns from {frm} to {to}.",
        "The colour of {c} changes to {to}.",
    ),
    "appear_together": ("{C} appear together.", "{C} fade in at the same time.", "Both {c} appear on the screen."),
}  # fmt: skip
CAPTION_BG = ("In front of the {bg} background, {c}", "On a {bg} backdrop, {c}")


@dataclass
class Speaker:
    name: str
    voice: str
    rate: int
    pitch: int


def est_duration(text: str, rate: int) -> float:
    """Slot length for a line: eSpeak NG's speaking time at `rate` wpm with a margin (calibrated here)."""
    pauses = sum(text.count(c) for c in ",.?!")
    return round(0.3 + (len(text) + 6 * pauses) / (0.095 * rate), 2)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _the(noun: str) -> str:
    return f"the {noun}"


def _fmt(template: str, **kw) -> str:
    return _cap(template.format(**kw))


def articles(text: str) -> str:
    """'a umbrella' -> 'an umbrella' (templates write 'a' everywhere)."""
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)


def _fields(ev, names: dict[str, str]) -> dict:
    """Format fields of an event: subject forms and detail words. names: actor id -> noun (no article)."""
    subj = " and ".join(_the(names[a]) for a in ev.actors)
    d = ev.detail
    return {
        "s": subj,
        "S": _cap(subj),
        "side": SIDE.get(d.get("side", ""), ""),
        "dir": DIR_SPOKEN.get(d.get("direction", ""), ""),
        "dirp": DIR_PARA.get(d.get("direction", ""), ""),
        "to": d.get("to", ""),
        "frm": d.get("from", ""),
    }


def event_key(ev) -> tuple:
    return (ev.action, tuple(sorted(ev.actors)), tuple(sorted(ev.detail.items())))


class Script:
    """Builds the dialogue and all annotations for a World; `build()` returns the annotation dict."""

    def __init__(self, rng: np.random.Generator, world: World, split: str):
        self.rng, self.w, self.split = rng, world, split
        self.occupied: list[tuple[float, float]] = []
        self.lines: list[dict] = []
        keys = [event_key(e) for e in world.events]
        self.unique = [keys.count(k) == 1 for k in keys]

    # -- helpers ---------------------------------------------------------------------------------
    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def noun(self, actor: str, avoid: str | None = None) -> str:
        nouns = [n for n in self.w.actors[actor].nouns if n != avoid]
        return self.pick(nouns)

    def free(self, start: float, end: float) -> bool:
        if start < 1.0 or end > self.w.duration - 0.2:  # Whisper misses speech at the very start
            return False
        return all(end + 0.35 <= s or start >= e + 0.35 for s, e in self.occupied)

    def add_line(self, start: float, speaker: Speaker, text: str, kind: str, **extra) -> dict | None:
        start = round(start, 2)
        end = round(start + est_duration(text, speaker.rate), 2)
        if not self.free(start, end):
            return None
        self.occupied.append((start, end))
        text = articles(text)
        line = {"start": start, "end": end, "speaker": speaker.name, "text": text, "kind": kind}
        line.update({"event": None, "topic": None})
        line.update(extra)
        self.lines.append(line)
        return line

    def speaker_for(self, topic: str | None) -> Speaker:
        ok = [
            s
            for s in self.speakers
            if self.split == "comp" or topic is None or (s.name, topic) not in HELD_OUT_TOPICS
        ]
        return self.pick(ok or self.speakers)

    # -- dialogue ------------------------------------------------------------------------------------
    def cast(self) -> None:
        n = int(self.rng.integers(2, 5))
        names = list(self.rng.choice(NAMES, size=n, replace=False))
        if self.split == "comp":  # make a held-out (speaker, actor) pair possible
            pairs = [(nm, a) for nm, a in sorted(HELD_OUT_TOPICS) if a in self.w.actors and self.w.tracks[a]]
            if not pairs:
                raise ValueError("no held-out topic pair for this world")
            self.comp_pair = pairs[int(self.rng.integers(len(pairs)))]
            if self.comp_pair[0] not in names:
                names[0] = self.comp_pair[0]
        voices = self.rng.permutation(len(VOICES))
        self.speakers = [
            Speaker(str(nm), VOICES[int(voices[i])], int(self.rng.integers(130, 161)), int(self.rng.integers(30, 71)))
            for i, nm in enumerate(names)
        ]  # fmt: skip

    def dialogue(self) -> None:
        rng, w = self.rng, self.w
        events = w.events
        # 1. a reaction said twice at two different (unique) events: only picture + speech disambiguate it
        self.reaction = self.pick(REACTIONS)
        cand = [i for i, e in enumerate(events) if self.unique[i]]
        rng.shuffle(cand)
        self.reaction_events = []
        for i in cand:
            if len(self.reaction_events) == 2:
                break
            e = events[i]
            sp = self.speaker_for(None)
            if self.add_line(e.start + 0.3, sp, self.reaction[0], "reaction", event=e.id):
                self.reaction_events.append(e.id)
        # 2. comp: one line by the held-out speaker about the held-out actor
        if self.split == "comp":
            name, actor = self.comp_pair
            sp = next(s for s in self.speakers if s.name == name)
            for e in events:
                if actor in e.actors and self._event_line(e, sp, "now"):
                    break
            else:
                raise ValueError("could not place the held-out topic line")
        # 3. lines about events: now / preview / recall
        for e in events:
            u = rng.random()
            kind = "now" if u < 0.45 else "preview" if u < 0.62 else "recall" if u < 0.8 else None
            if kind:
                topic = e.actors[0]
                self._event_line(e, self.speaker_for(topic), kind)
        # 4. off-screen chatter fills the gaps
        pairs = [(r, t) for r in range(len(RELATIVES)) for t in range(len(THINGS))]
        order = rng.permutation(len(pairs))
        used_rel, used_thing = set(), set()
        n_off = int(rng.integers(3, 4 + int(w.duration // 20)))
        placed = 0
        for k in order:
            if placed >= n_off:
                break
            r, t = pairs[int(k)]
            if r in used_rel or t in used_thing:
                continue
            verb = self.pick(VERBS)
            text = self.pick(LINE_OFFSCREEN).format(rel=RELATIVES[r], verb=verb[0], thing=THINGS[t][0])
            sp = self.speaker_for(None)
            for _ in range(8):
                if self.add_line(float(rng.uniform(0.3, w.duration - 4)), sp, text, "offscreen",
                                 offscreen={"relative": RELATIVES[r], "thing": THINGS[t][0], "verb": verb[0]}):  # fmt: skip
                    used_rel.add(r)
                    used_thing.add(t)
                    placed += 1
                    break
        self.lines.sort(key=lambda x: x["start"])
        for i, line in enumerate(self.lines):
            line["id"] = i

    def _event_line(self, e, sp: Speaker, kind: str) -> dict | None:
        names = {a: self.noun(a) for a in e.actors}
        f = _fields(e, names)
        if kind == "now":
            text = _fmt(self.pick(LINE_NOW[e.action]), **f)
            starts = [e.start + 0.2 + 0.4 * k for k in range(4)]
        elif kind == "preview":
            text = _fmt(self.pick(LINE_PREVIEW), inf=INF[e.action].format(**f), **f)
            d = est_duration(text, sp.rate)
            starts = [e.start - d - 0.4 - 1.0 * k for k in range(5)]
        else:
            text = _fmt(self.pick(LINE_RECALL), past=PAST[e.action].format(**f), **f)
            starts = [e.end + 0.4 + 1.0 * k for k in range(5)]
        for s in starts:
            line = self.add_line(s, sp, text, kind, event=e.id, topic=e.actors[0], nouns=names)
            if line:
                return line
        return None

    # -- annotations --------------------------------------------------------------------------------
    def held(self, e=None, line=None) -> bool:
        if e is not None and any((a, e.action) in HELD_OUT_ACTIONS for a in e.actors):
            return True
        return line is not None and (line["speaker"], line.get("topic")) in HELD_OUT_TOPICS

    def para_fields(self, e, avoid: dict | None = None) -> dict:
        """Fields with paraphrased nouns (another noun than the spoken line used, when one was)."""
        avoid = avoid or {}
        names = {a: self.noun(a, avoid.get(a)) for a in e.actors}
        return _fields(e, names)

    def spoken_nouns(self, e) -> dict:
        for line in self.lines:
            if line.get("event") == e.id and line.get("nouns"):
                return line["nouns"]
        return {}

    def queries(self) -> list[dict]:
        w, out = self.w, []
        # video: a unique visual event, paraphrased
        vid = [e for i, e in enumerate(w.events) if self.unique[i] and e.id not in self.reaction_events]
        for e in self._sample(vid, 3):
            f = self.para_fields(e, self.spoken_nouns(e))
            text = _cap(f["s"]) + " " + self.pick(VP[e.action]).format(**f) + "."
            out.append(self._q(text, "video", e.start, e.end, "event", self.held(e)))
        # subtitles: preview / recall / off-screen lines
        subs = [x for x in self.lines if x["kind"] in ("preview", "recall", "offscreen")]
        for line in self._sample(subs, 3):
            out.append(self._q(self._line_para(line), "sub", line["start"], line["end"], line["kind"],
                               self.held(None, line)))  # fmt: skip
        # both: the reaction said twice, located by what happens on screen
        for line in self.lines:
            if line["kind"] == "reaction":
                e = w.events[line["event"]]
                f = self.para_fields(e)
                vp = self.pick(VP[e.action]).format(**f)
                text = f"{_cap(self.reaction[1])} while {f['s']} {vp}."
                out.append(self._q(text, "both", line["start"], line["end"], "reaction", self.held(e)))
        for i, q in enumerate(out):
            q["id"] = i
        return out

    def _line_para(self, line: dict) -> str:
        if line["kind"] == "offscreen":
            o = line["offscreen"]
            verb = dict(VERBS)[o["verb"]]
            thing = dict(THINGS)[o["thing"]]
            return self.pick(Q_OFFSCREEN).format(rel=o["relative"], verb=verb, thing=thing)
        e = self.w.events[line["event"]]
        f = self.para_fields(e, line.get("nouns"))
        if line["kind"] == "preview":
            return self.pick(Q_PREVIEW).format(inf=INF_P[e.action].format(**f), p=f["s"], **f)
        return self.pick(Q_RECALL).format(past=PAST_P[e.action].format(**f), p=f["s"], **f)

    def _q(self, text, qtype, start, end, source, held) -> dict:
        return {"text": text, "type": qtype, "start": round(float(start), 2), "end": round(float(end), 2),
                "source": source, "held_out": bool(held)}  # fmt: skip

    def _sample(self, items: list, k: int) -> list:
        if len(items) <= k:
            return list(items)
        idx = sorted(self.rng.choice(len(items), size=k, replace=False))
        return [items[int(i)] for i in idx]

    def captions(self) -> list[dict]:
        out = []
        first_in_scene = set()
        colour = {a: act.colour for a, act in self.w.actors.items()}
        for e in self.w.events:
            names = {}
            for a in e.actors:
                noun = self.w.actors[a].nouns[0]
                names[a] = f"{colour[a]} {noun}" if colour[a] and e.action != "change_colour" else noun
            f = _fields(e, names)
            text = self.pick(CAPTION[e.action]).format(C=f["S"], c=f["s"], **f)
            if e.scene not in first_in_scene:
                first_in_scene.add(e.scene)
                if self.rng.random() < 0.5 and not text.startswith(("From", "The colour", "Both")):
                    bg = self.w.scenes[e.scene].background
                    text = self.pick(CAPTION_BG).format(bg=bg, c=text[0].lower() + text[1:])
            if e.action == "change_colour":
                colour[e.actors[0]] = e.detail["to"]
            out.append({"start": e.start, "end": e.end, "text": text, "event": e.id})
        return out

    def build_qa(self) -> list[dict]:
        from synthtv.qa import make_qa

        return make_qa(self)

    def build(self) -> dict:
        self.cast()
        self.dialogue()
        queries, qa, captions = self.queries(), self.build_qa(), self.captions()
        for x in queries + captions:
            x["text"] = articles(x["text"])
        for x in qa:
            x["question"] = articles(x["question"])
            x["candidates"] = [articles(c) for c in x["candidates"]]
        return {
            "speakers": [s.__dict__ for s in self.speakers],
            "subtitles": self.lines,
            "queries": queries,
            "qa": qa,
            "captions": captions,
        }


def actor_pool(split: str, kind: str | None = None) -> list[str]:
    """Actors that can appear in `split` (optionally only photos or only shapes)."""
    pool = [a for a in ALL_ACTORS if split == "novel" or a not in NOVEL_PHOTOS]
    if kind == "shape":
        pool = [a for a in pool if a in SHAPES]
    elif kind == "photo":
        pool = [a for a in pool if a not in SHAPES]
    return pool


__all__ = ["Script", "Speaker", "est_duration", "actor_pool", "NAMES", "COLOURS", "NUMBERS"]
