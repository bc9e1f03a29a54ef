"""5-way multiple-choice questions (TVQA-style) for a SynthTV episode.

Types: what / which / who-said / when / before-after / counting. Distractors come from the same episode
first (other actors, other events, other speakers, other off-screen topics) and only then from the global
vocabulary of the same kind, so that question + candidates alone carry no answer signal; answer positions
are balanced per episode. Every question has a gold evidence span.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from synthtv.world import COLOURS, DIRECTIONS, SHAPES, SIDES

N_CANDIDATES = 5
ANSWER_VP = {
    "enter": "it enters from the {side}",
    "leave": "it exits on the {side}",
    "move": "it shifts {dirp}",
    "grow": "it becomes larger",
    "shrink": "it becomes smaller",
    "change_colour": "it turns {to}",
}
Q_WHAT_ACTION = (
    "What does {p} do while someone talks about a {rel} who {verb} a {thing}?",
    "While a speaker mentions a {rel} who {verb} a {thing}, what happens to {p}?",
)
Q_WHAT_THING = (
    "What does {name} say their {rel} {verb}?",
    "According to {name}, what did their {rel} {verb}?",
)
Q_WHICH = ("Which object {vp}?", "Which thing on screen {vp}?")
Q_WHO_EVENT = ("Who says that {p} {vp}?", "Who points out that {p} {vp}?")
Q_WHO_PREVIEW = ("Who announces that {p} will {inf}?",)
Q_WHO_OFF = (
    "Who mentions a {rel} who {verb} a {thing}?",
    "Who talks about their {rel} having {verb} a {thing}?",
)
Q_WHEN = ("When does {p} {inf}?", "At what point does {p} {inf}?")
A_WHEN = "While someone talks about a {rel} who {verb} a {thing}"
Q_AFTER = ("What happens right after {p} {past}?", "What is the next thing to happen after {p} {past}?")
Q_BEFORE = ("What happens just before {p} {past}?", "What happens right before {p} {past}?")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _vp_options(kind: str) -> list[str]:
    """Every answer phrase an actor of this kind could have (for distractors)."""
    out = [ANSWER_VP["enter"].format(side=s) for s in SIDES]
    out += [ANSWER_VP["leave"].format(side=s) for s in SIDES]
    from synthtv.script import DIR_PARA

    out += [ANSWER_VP["move"].format(dirp=DIR_PARA[d]) for d in DIRECTIONS]
    out += [ANSWER_VP["grow"], ANSWER_VP["shrink"]]
    if kind == "shape":
        out += [ANSWER_VP["change_colour"].format(to=c) for c in COLOURS]
    return [_cap(x) for x in out]


def make_qa(sc) -> list[dict]:
    """sc: a synthtv.script.Script after cast() and dialogue(); returns the QA list."""
    from synthtv.script import (
        INF_P,
        NAMES,
        NUMBERS,
        PAST_P,
        RELATIVES,
        THINGS,
        VERBS,
        VP,
        _fields,
        actor_pool,
    )

    rng, w = sc.rng, sc.w
    events = w.events
    single = [e for i, e in enumerate(events) if sc.unique[i] and len(e.actors) == 1]
    offs = [x for x in sc.lines if x["kind"] == "offscreen"]
    canon = {a: act.nouns[0] for a, act in w.actors.items()}
    verb_p, thing_p = dict(VERBS), dict(THINGS)
    pools: dict[str, list] = {
        t: [] for t in ("what", "which", "who-said", "when", "before-after", "counting")
    }

    def off_fields(line):
        o = line["offscreen"]
        return {"rel": o["relative"], "verb": verb_p[o["verb"]], "thing": thing_p[o["thing"]]}

    def overlap(e, line) -> float:
        return min(e.end, line["end"]) - max(e.start, line["start"])

    def desc(e) -> str:  # canonical description of an event, used as an answer
        f = _fields(e, canon)
        vp = VP[e.action][1 if e.action in ("grow", "appear_together") else 0].format(**f)
        return _cap(f"{f['s']} {vp}")

    def q(qtype, question, answer, pool, start, end, held=False):
        pools[qtype].append((question, answer, [p for p in pool if p != answer], start, end, held))

    # what: an event during an off-screen line (both), or the thing an off-screen line names (subtitles)
    for e in single:
        for line in offs:
            same_actor = [x for x in events if e.actors[0] in x.actors and overlap(x, line) > 0]
            if overlap(e, line) >= 1.0 and same_actor == [e]:
                f = sc.para_fields(e)
                kind = w.actors[e.actors[0]].kind
                ans = _cap(ANSWER_VP[e.action].format(**f))
                ep = [_cap(ANSWER_VP[x.action].format(**_fields(x, canon))) for x in single
                      if x.action in ANSWER_VP and (kind == "shape" or x.action != "change_colour")]  # fmt: skip
                pool = _dedup(ep + list(rng.permutation(_vp_options(kind))))
                text = sc.pick(Q_WHAT_ACTION).format(p=f["s"], **off_fields(line))
                q("what", text, ans, pool, min(e.start, line["start"]), max(e.end, line["end"]), sc.held(e))
                # when: the same overlap asked the other way round
                ans_w = A_WHEN.format(**off_fields(line))
                others = [A_WHEN.format(**off_fields(x)) for x in offs if x is not line]
                rand = [
                    A_WHEN.format(rel=RELATIVES[r], verb=VERBS[v][1], thing=THINGS[t][1])
                    for r, v, t in zip(rng.integers(0, len(RELATIVES), 12), rng.integers(0, len(VERBS), 12),
                                       rng.integers(0, len(THINGS), 12))
                ]  # fmt: skip
                text = sc.pick(Q_WHEN).format(p=f["s"], inf=INF_P[e.action].format(**f))
                q("when", text, ans_w, _dedup(others + rand), e.start, e.end, sc.held(e))
    for line in offs:
        o = line["offscreen"]
        ans = _cap(f"a {thing_p[o['thing']]}")
        pool = [_cap(f"a {thing_p[x['offscreen']['thing']]}") for x in offs]
        pool += [_cap(f"a {t[1]}") for t in rng.permutation(np.array(THINGS, dtype=object))]
        text = sc.pick(Q_WHAT_THING).format(name=line["speaker"], rel=o["relative"], verb=verb_p[o["verb"]])
        q("what", text, ans, _dedup(pool), line["start"], line["end"])

    # which: the one actor that did a thing (no other actor did the same thing in the episode)
    what_done = Counter((x.action, tuple(sorted(x.detail.items()))) for x in events)
    for e in single:
        if what_done[(e.action, tuple(sorted(e.detail.items())))] > 1:
            continue
        a = e.actors[0]
        if e.action == "change_colour":
            kinds = "shape"
        else:
            kinds = None
        f = sc.para_fields(e)
        vp = sc.pick(VP[e.action]).format(**f)
        same_kind = [x for x in w.actors if kinds is None or x in SHAPES]
        pool = [_cap(f"the {canon[x]}") for x in same_kind]
        glob = [x for x in actor_pool(sc.split, kinds) if x not in w.actors]
        from synthtv.world import PHOTOS

        pool += [_cap(f"the {(PHOTOS.get(x) or SHAPES[x])[0]}") for x in rng.permutation(glob)]
        q("which", sc.pick(Q_WHICH).format(vp=vp), _cap(f"the {canon[a]}"), _dedup(pool), e.start, e.end,
          sc.held(e))  # fmt: skip

    # who-said: the speaker of an event line or an off-screen line
    names = [s.name for s in sc.speakers]
    name_pool = names + [n for n in rng.permutation(NAMES) if n not in names]
    for line in sc.lines:
        if line["kind"] in ("now", "recall") and sc.unique[line["event"]]:
            e = events[line["event"]]
            f = sc.para_fields(e, line.get("nouns"))
            vp = PAST_P[e.action] if line["kind"] == "recall" else sc.pick(VP[e.action])
            text = sc.pick(Q_WHO_EVENT).format(p=f["s"], vp=vp.format(**f))
        elif line["kind"] == "preview" and sc.unique[line["event"]]:
            e = events[line["event"]]
            f = sc.para_fields(e, line.get("nouns"))
            text = sc.pick(Q_WHO_PREVIEW).format(p=f["s"], inf=INF_P[e.action].format(**f))
        elif line["kind"] == "offscreen":
            o = off_fields(line)
            text = sc.pick(Q_WHO_OFF).format(**o)
        else:
            continue
        q("who-said", text, line["speaker"], name_pool, line["start"], line["end"], sc.held(None, line))

    # before-after: neighbouring events
    for i, e in enumerate(events):
        if not sc.unique[i]:
            continue
        f = sc.para_fields(e)
        all_desc = [desc(x) for x in events]
        for j, tmpl in ((i + 1, Q_AFTER), (i - 1, Q_BEFORE)):
            if 0 <= j < len(events) and sc.unique[j] and desc(events[j]) != desc(e):
                ans = desc(events[j])
                pool = [d for k, d in enumerate(all_desc) if k not in (i, j) and d != desc(e)]
                pool = _dedup(list(rng.permutation(pool)))
                text = sc.pick(tmpl).format(p=f["s"], past=PAST_P[e.action].format(**f))
                lo, hi = sorted((e, events[j]), key=lambda x: x.start)
                q("before-after", text, ans, pool, lo.start, hi.end, sc.held(e) or sc.held(events[j]))

    # counting: answers 1..5; pick the question whose count is nearest a uniform target
    counts = []
    for a in w.actors:
        if w.actors[a].kind == "shape":
            evs = [e for e in events if e.action == "change_colour" and a in e.actors]
            if evs:
                counts.append((f"How many times does the {sc.noun(a)} change colour?", evs))
        evs = [e for e in events if e.action in ("grow", "shrink") and a in e.actors]
        if evs:
            counts.append((f"How many times does the {sc.noun(a)} change size?", evs))
    for side in SIDES:
        evs = [e for e in events if e.action == "enter" and e.detail["side"] == side]
        if evs:
            counts.append((f"How many times does something enter from the {side}?", evs))
    shown = [a for a in w.actors if w.tracks[a]]
    counts.append(("How many different objects are shown in this episode?", shown))
    for line in offs:
        mid = (line["start"] + line["end"]) / 2
        n = len(w.on_screen(mid))
        if n:
            o = off_fields(line)
            counts.append((f"How many objects are on screen when someone mentions a {o['rel']} who {o['verb']} "
                           f"a {o['thing']}?", (line, n)))  # fmt: skip
    target = int(rng.integers(1, 6))
    options = []
    for text, evs in counts:
        if isinstance(evs, tuple):
            n, (s, e_) = evs[1], (evs[0]["start"], evs[0]["end"])
        elif evs and isinstance(evs[0], str):
            n, (s, e_) = len(evs), (0.0, w.duration)
        else:
            n, (s, e_) = len(evs), (min(x.start for x in evs), max(x.end for x in evs))
        if 1 <= n <= 5:
            options.append((abs(n - target), float(rng.random()), text, n, s, e_))
    for _, _, text, n, s, e_ in sorted(options)[:1]:
        q("counting", text, _cap(NUMBERS[n]), [_cap(x) for x in NUMBERS[1:6]], s, e_)

    # at most two per type, then balanced answer positions
    chosen = []
    for qtype, items in pools.items():
        items = [it for it in items if len(_dedup(it[2])) >= N_CANDIDATES - 1]
        for k in rng.permutation(len(items))[:2] if items else []:
            chosen.append((qtype, *items[int(k)]))
    order = rng.permutation(len(chosen))
    chosen = [chosen[int(k)] for k in order]
    positions = rng.permutation(np.resize(rng.permutation(N_CANDIDATES), len(chosen)))
    out = []
    for i, ((qtype, question, answer, pool, s, e_, held), pos) in enumerate(zip(chosen, positions)):
        distract = _dedup(pool)[: N_CANDIDATES - 1]
        distract = [distract[int(k)] for k in rng.permutation(len(distract))]
        cands = distract[: int(pos)] + [answer] + distract[int(pos) :]
        out.append({"id": i, "type": qtype, "question": question, "candidates": cands, "answer_idx": int(pos),
                    "start": round(float(s), 2), "end": round(float(e_), 2), "held_out": bool(held)})  # fmt: skip
    return out


def _dedup(xs) -> list:
    seen, out = set(), []
    for x in xs:
        x = str(x)
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
