"""Evaluation metrics shared by every evaluation in the project (issue 4 item 6).

Scale: every value returned here is a plain fraction as the underlying formula gives it -- recall, accuracy,
BLEU-4, METEOR, ROUGE-L and R@4 lie in [0, 1]; CIDEr-D lies in [0, 10] (coco-caption's x10 convention).
The HERO / MART / COOT papers print these x100 (e.g. MART's ActivityNet R@4 6.64 is 0.0664 here).

Moment retrieval (SVMR / VCMR), as in HERO's ``utils/tvr_standalone_eval.py`` (TVRetrieval):
  a query is a hit at R@k, IoU t when any of its top-k predicted moments (for VCMR: in the gold video)
  has temporal IoU >= t with the gold moment. The ranked lists are taken in the order given (the caller
  sorts by score; ties keep the caller's order). Two intervals with zero union (both of zero length at the
  same point) have IoU 0, so a zero-length gold moment is never hit. IoU is compared with a 1e-6 slack so
  that float rounding at an exact threshold (e.g. 0.5) does not decide a hit.

Captioning, as in MART's ``densevid_eval/para-evaluate.py`` and ``evaluateRepetition.py``:
  the sentences of a video are joined into one paragraph per video and scored against the reference
  paragraph with coco-caption's scorers (pycocoevalcap: corpus BLEU-4 with "closest" reference length,
  METEOR 1.5, ROUGE-L (beta 1.2), CIDEr-D (sigma 6, clipped, x10)). Videos are those of the references; a
  video without a prediction scores as an empty paragraph; predictions for other videos are ignored.
  Tokenizer (Java-free, replaces MART's ``parse_sent``): lowercase, every character other than a-z / 0-9
  becomes a space, split on whitespace. MART's ``parse_sent`` also drops digits; we keep them.
  R4 (MART's repetition, lower is better): per video, count the 4-grams of each predicted sentence (no
  4-gram crosses a sentence boundary), R4 = sum(max(count - 1, 0)) / sum(count) (0 when a video has no
  4-gram), averaged over the reference videos that have a prediction. MART tokenizes here by splitting on
  spaces after dropping commas and a final period (case kept); we use the tokenizer above.
  CIDEr-D is a corpus measure: its idf comes from the evaluated references, so a single video always
  scores 0 and n-grams found in every reference weigh nothing.
  METEOR runs pycocoevalcap's bundled ``meteor-1.5.jar`` (and its paraphrase table) through ``java``; it
  works offline. It needs a Java runtime (Debian: ``apt-get install default-jre-headless``); without one
  the key is omitted (``meteor=None``) or an error is raised (``meteor=True``). Starting it loads a 60 MB
  paraphrase table: about 12 s on 2 CPU cores, paid once per process (the scorer is kept).
"""

from __future__ import annotations

import re
import shutil
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

__all__ = [
    "temporal_iou",
    "moment_recall",
    "qa_accuracy",
    "by_type",
    "tokenize",
    "repetition_r4",
    "caption_metrics",
    "meteor_available",
]

IOU_EPS = 1e-6


# ---------------------------------------------------------------- moment retrieval
def _iou(ps, pe, gs, ge):
    """Elementwise (broadcast) temporal IoU of [ps, pe] and [gs, ge]; 0 where the union is 0."""
    inter = np.maximum(0.0, np.minimum(pe, ge) - np.maximum(ps, gs))
    union = np.maximum(pe, ge) - np.minimum(ps, gs)  # equals the union whenever inter > 0
    return np.divide(inter, union, out=np.zeros(np.broadcast(inter, union).shape), where=union > 0)


def _check_spans(a: np.ndarray, what: str) -> None:
    if a.size and (a[..., 1] < a[..., 0]).any():
        raise ValueError(f"{what}: a span ends before it starts")


def temporal_iou(pred, gold) -> np.ndarray:
    """IoU of every predicted span with every gold span: pred (N, 2), gold (M, 2) [start, end] -> (N, M)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    g = np.asarray(gold, dtype=np.float64).reshape(-1, 2)
    _check_spans(p, "pred")
    _check_spans(g, "gold")
    return _iou(p[:, None, 0], p[:, None, 1], g[None, :, 0], g[None, :, 1])


def moment_recall(
    predictions: Sequence[Sequence[Sequence]],
    golds: Sequence[Sequence],
    ks: Sequence[int] = (1, 5, 10),
    ious: Sequence[float] = (0.5, 0.7),
) -> dict[str, float]:
    """R@k at temporal IoU t for SVMR or VCMR -> {"R1@0.5", "R1@0.7", "R5@0.5", ...} (fractions).

    SVMR: ``golds[q] = (start, end)``; ``predictions[q]`` = ranked ``[(start, end, *ignored), ...]``.
    VCMR: ``golds[q] = (video_id, start, end)``; ``predictions[q]`` = ranked
    ``[(video_id, start, end, *ignored), ...]``; a moment counts only in the gold video.
    The task is read from the gold tuples (3 elements: VCMR); trailing entries of a prediction (a score)
    are ignored. A query may have no or fewer than k predictions (missing ranks are misses).
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} prediction lists for {len(golds)} gold moments")
    if len(golds) == 0:
        raise ValueError("no queries to evaluate")
    vcmr = len(golds[0]) == 3
    off = 1 if vcmr else 0
    kmax = max(ks)
    n = len(golds)
    spans = np.zeros((n, kmax, 2))
    valid = np.zeros((n, kmax), dtype=bool)  # a prediction exists at this rank (and is in the gold video)
    gold = np.array([g[off : off + 2] for g in golds], dtype=np.float64).reshape(n, 2)
    for q, (preds, g) in enumerate(zip(predictions, golds)):
        top = list(preds)[:kmax]
        if top:
            spans[q, : len(top)] = [p[off : off + 2] for p in top]
            valid[q, : len(top)] = [p[0] == g[0] for p in top] if vcmr else True
    _check_spans(gold, "gold")
    _check_spans(spans, "predictions")
    iou = _iou(spans[..., 0], spans[..., 1], gold[:, None, 0], gold[:, None, 1]) * valid  # (n, kmax)
    out = {}
    for k in ks:
        for t in ious:
            out[f"R{k}@{t:g}"] = float(np.mean((iou[:, :k] >= t - IOU_EPS).any(axis=1)))
    return out


# ---------------------------------------------------------------- QA
def qa_accuracy(pred_indices, gold_indices) -> float:
    """Fraction of questions whose predicted candidate index equals the gold one.

    ``pred_indices`` is (N,) indices or (N, C) candidate scores (argmax; a tie goes to the lowest index).
    """
    pred = np.asarray(pred_indices)
    gold = np.asarray(gold_indices).reshape(-1)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold answers")
    if len(gold) == 0:
        raise ValueError("no questions to evaluate")
    return float(np.mean(pred == gold))


def by_type(metric: Callable, types: Sequence[Hashable], *columns: Sequence, **kwargs) -> dict:
    """Apply ``metric`` to each group of items sharing a type label -> {label: metric(*columns_of_group)}.

    E.g. ``by_type(moment_recall, query_types, preds, golds)`` or ``by_type(qa_accuracy, q_types, p, g)``.
    Labels keep their first-seen order.
    """
    groups: dict[Hashable, list[int]] = {}
    for i, t in enumerate(types):
        groups.setdefault(t, []).append(i)
    for c in columns:
        if len(c) != len(types):
            raise ValueError(f"a column has {len(c)} items for {len(types)} type labels")
    return {t: metric(*([c[i] for i in idx] for c in columns), **kwargs) for t, idx in groups.items()}


# ---------------------------------------------------------------- captioning
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase, replace every run of characters other than a-z/0-9 by a space, split."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _paragraph(sentences: Sequence[str]) -> str:
    return " ".join(w for s in sentences for w in tokenize(s))


def repetition_r4(predictions: Mapping[Hashable, Sequence[str]], video_ids=None) -> float:
    """MART's R@4: mean over videos of the fraction of repeated 4-grams within the video's sentences."""
    vids = [v for v in (predictions if video_ids is None else video_ids) if v in predictions]
    if not vids:
        return 0.0
    rates = []
    for v in vids:
        counts = Counter()
        for s in predictions[v]:
            w = tokenize(s)
            counts.update(zip(w, w[1:], w[2:], w[3:]))
        c = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
        rates.append(float(np.maximum(c - 1, 0).sum() / c.sum()) if c.size else 0.0)
    return float(np.mean(rates))


_METEOR = None
_METEOR_LOCK = threading.Lock()


def meteor_available() -> bool:
    """True when a ``java`` executable is on PATH (METEOR can then be started)."""
    return shutil.which("java") is not None


def _meteor_score(gts: dict, res: dict) -> float:
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None:
            from pycocoevalcap.meteor.meteor import Meteor

            _METEOR = Meteor()
        try:
            return float(_METEOR.compute_score(gts, res)[0])
        except Exception:
            _METEOR = None  # a dead java process: start afresh next time
            raise


def caption_metrics(
    predictions: Mapping[Hashable, Sequence[str]],
    references: Mapping[Hashable, Sequence[str]],
    meteor: bool | None = None,
) -> dict[str, float]:
    """Paragraph-level captioning metrics like MART -> {"BLEU4", "METEOR", "ROUGE_L", "CIDEr", "R4"}.

    ``predictions`` / ``references``: {video_id: [sentence, ...]} (one reference paragraph per video).
    Values are fractions (CIDEr-D in [0, 10]); see the module docstring for the exact definitions.
    ``meteor``: None = include METEOR when Java is found, else omit the key (with a warning);
    True = require it (RuntimeError without Java); False = skip it (saves ~12 s at first use).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    vids = list(references)
    if not vids:
        raise ValueError("no reference videos to evaluate")
    gts = {i: [_paragraph(references[v])] for i, v in enumerate(vids)}
    res = {i: [_paragraph(predictions.get(v, ()))] for i, v in enumerate(vids)}
    out = {"BLEU4": float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])}
    if meteor is None and not meteor_available():
        warnings.warn("METEOR omitted: no java on PATH (apt-get install default-jre-headless)", stacklevel=2)
    elif meteor is not False:
        if not meteor_available():
            raise RuntimeError("METEOR needs java on PATH (apt-get install default-jre-headless)")
        out["METEOR"] = _meteor_score(gts, res)
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    out["R4"] = repetition_r4(predictions, vids)
    return out
