"""Video question answering: pick the best of the candidate answers and point at the evidence.

With a trained HERO checkpoint the QA head scores each "[sep] question [sep] answer" over the cached
frame states (or, for a checkpoint on the official TVQA input, over frames fused again with the
candidate appended to every subtitle) and predicts the evidence span; without one, a transparent text
matcher scores each candidate against the subtitles and frame concepts that best match the question.
With no candidates from the user, candidates are proposed from the video's own content, and the answer
says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from demo.engine import HeroEngine
from demo.errors import InputError
from demo.library import VideoRecord

MAX_CANDIDATES = 10


@dataclass
class Answer:
    answer: str
    answer_index: int
    scores: list[float]  # probability per candidate (softmax over candidates)
    candidates: list[str]
    evidence: tuple[float, float]  # seconds
    candidates_source: str  # "user" | "proposed"
    method: str  # "hero+text" | "text"
    hero_weight: float | None = None  # HERO's share in `scores` (None: the text matcher alone)

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "answer_index": self.answer_index,
            "scores": [round(s, 4) for s in self.scores],
            "candidates": self.candidates,
            "evidence": {"start": round(self.evidence[0], 3), "end": round(self.evidence[1], 3)},
            "candidates_source": self.candidates_source,
            "method": self.method,
        } | ({} if self.hero_weight is None else {"hero_weight": round(self.hero_weight, 3)})


# --- evidence units: what the text matcher and the proposer read ------------------------------------


def _units(record: VideoRecord) -> tuple[list[str], np.ndarray]:
    """Texts with their time spans: each subtitle, and each frame's concept names."""
    dt = record.frame_interval
    texts = [s.text for s in record.subtitles] + [", ".join(c) for c in record.concepts]
    spans = [(s.start, s.end) for s in record.subtitles] + [
        (i * dt, (i + 1) * dt) for i in range(len(record.concepts))
    ]
    return texts, np.array(spans, np.float64).reshape(-1, 2)


_SPLIT = re.compile(r"[,.;:!?]|\b(?:and|but|while|then|with|because)\b", re.IGNORECASE)
_STOP = {"the", "a", "an", "is", "are", "it", "this", "that", "there", "here", "now", "so", "of"}


def propose_candidates(record: VideoRecord, question: str, k: int = 5) -> list[str]:
    """Up to k distinct candidate answers from the video itself: short phrases of its subtitles, its
    recognised concepts, and its captions if any, the ones closest to the question first."""
    from demo.text import embed

    pool: list[str] = []
    for s in record.subtitles:
        for part in _SPLIT.split(s.text):
            words = [w for w in re.findall(r"[\w'-]+", part or "")]
            if 1 <= len(words) <= 7 and not all(w.lower() in _STOP for w in words):
                pool.append(" ".join(words))
    for names in record.frame_labels():  # objects, screen text, sounds, actions, then ImageNet names
        pool.extend(names[:2])
    pool.extend(c.get("text", "") for c in record.info.get("captions", []))
    pool = list(dict.fromkeys(p.strip() for p in pool if p and p.strip()))
    if not pool:
        raise InputError("ask: the video has no subtitles or recognised content to propose answers from")
    emb = embed(pool)
    order = np.argsort(-(emb @ embed([question])[0]), kind="stable")
    chosen: list[int] = []
    for i in order:  # skip near-duplicates of what is already chosen
        if all(float(emb[i] @ emb[j]) < 0.85 for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return [pool[i] for i in chosen]


def _text_answer(
    record: VideoRecord, question: str, candidates: list[str]
) -> tuple[np.ndarray, tuple[float, float]]:
    from demo.text import embed

    texts, spans = _units(record)
    if not texts:
        return np.zeros(len(candidates)), (0.0, record.meta.duration)
    u = embed(texts)  # (U, 384)
    rel_q = u @ embed([question])[0]  # (U,)
    rel_c = embed([f"{question} {c}" for c in candidates]) @ u.T  # (C, U)
    joint = rel_c + 0.5 * rel_q[None]
    best_unit = joint.argmax(1)
    scores = joint.max(1)
    s, e = spans[best_unit[int(scores.argmax())]]
    return scores, (float(s), float(e))


def answer_question(
    record: VideoRecord, question: str, candidates: list[str] | None = None, engine: HeroEngine | None = None
) -> Answer:
    """The best candidate for `question` about `record`, its confidence and evidence span."""
    question = question.strip()
    if not question:
        raise InputError("ask: the question is empty")
    source = "user"
    cands = [c.strip() for c in (candidates or []) if c and c.strip()]
    if len(cands) > MAX_CANDIDATES:
        raise InputError(f"ask: at most {MAX_CANDIDATES} candidate answers (got {len(cands)})")
    if not cands:
        cands, source = propose_candidates(record, question), "proposed"
    if len(cands) == 1:
        cands = cands + ["none of these"]
    dt = record.frame_interval
    raw, evidence = _text_answer(record, question, cands)
    probs = torch.softmax(torch.tensor(raw) / 0.05, 0)  # cosine gaps are small: a sharp temperature
    method, w = "text", None
    if engine is not None and engine.can_answer:
        from models.hero_api import answer_candidates

        v_temp, fused = engine.states(record)
        qa_ids = engine.qa_token_ids(question, cands)
        if engine.config.qa_in_subtitles:
            fused = engine.candidate_states(record, qa_ids)
        r = answer_candidates(engine.model, fused, qa_ids)
        # HERO's share: all of it where its video score says it recognises the question in this video,
        # none where it does not (as in search: demo.search.hero_weight); all of it without a VSM head
        w = 1.0
        if engine.can_search:
            from demo.search import TEXT_WEIGHT, hero_weight
            from models.hero_api import video_scores

            score = video_scores(engine.model, engine.query_vectors([question]), v_temp)[0]
            w = float(hero_weight(float(score), engine.gate)) / (1 - TEXT_WEIGHT)
        probs = w * torch.softmax(r["scores"].float(), 0) + (1 - w) * probs
        if w >= 0.5:
            evidence = (r["st_idx"] * dt, min((r["ed_idx"] + 1) * dt, record.meta.duration))
        method = "hero+text"
    probs = probs.tolist()
    i = int(np.argmax(probs))
    return Answer(cands[i], i, probs, cands, evidence, source, method, w)
