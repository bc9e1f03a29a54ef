"""training.metrics against values worked out by hand (in the comments)."""

import math

import numpy as np
import pytest

from training.metrics import (
    by_type,
    caption_metrics,
    meteor_available,
    moment_recall,
    qa_accuracy,
    repetition_r4,
    temporal_iou,
    tokenize,
)

KEYS = ["R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "R10@0.5", "R10@0.7"]


# ---------------------------------------------------------------- temporal IoU
def test_temporal_iou_matrix():
    pred = [[0, 4], [2, 6], [10, 12], [3, 3]]
    gold = [[0, 4], [1, 5]]
    # [0,4] vs [0,4]: 4/4 = 1;      [0,4] vs [1,5]: inter 3, union 5 -> 0.6
    # [2,6] vs [0,4]: 2/6;          [2,6] vs [1,5]: inter 3, union 5 -> 0.6
    # [10,12]: disjoint -> 0;       [3,3] zero length: inter 0 -> 0
    want = [[1, 0.6], [2 / 6, 0.6], [0, 0], [0, 0]]
    np.testing.assert_allclose(temporal_iou(pred, gold), want)
    assert temporal_iou(np.zeros((0, 2)), gold).shape == (0, 2)


def test_temporal_iou_zero_union_and_bad_span():
    # both spans the same single point: union 0 -> IoU 0 (as HERO's compute_temporal_iou_batch)
    assert temporal_iou([[2, 2]], [[2, 2]])[0, 0] == 0
    with pytest.raises(ValueError):
        temporal_iou([[3, 1]], [[0, 1]])


# ---------------------------------------------------------------- SVMR / VCMR recall
def test_svmr_recall_hand_computed():
    golds = [(0.0, 10.0), (20.0, 30.0), (5.0, 5.0), (0.0, 4.0)]
    preds = [
        # q0: rank 1 [0,6] IoU 0.6 (hit @0.5 only); rank 2 [1,9] IoU 0.8 -> R5@0.7 hit
        [(0, 6), (1, 9)],
        # q1: ranks 1-5 miss (disjoint), rank 6 [21,30] IoU 0.9 -> only R10 hits
        [(0, 1)] * 5 + [(21, 30, 0.3)],  # a trailing score column is ignored
        # q2: zero-length gold: never hit
        [(5, 5), (4, 6)],
        # q3: no predictions at all
        [],
    ]
    r = moment_recall(preds, golds)
    assert list(r) == KEYS
    # R1@0.5: q0 only -> 1/4; R1@0.7: none -> 0; R5@0.5 = R5@0.7: q0 -> 1/4; R10@*: q0, q1 -> 2/4
    want = {"R1@0.5": 0.25, "R1@0.7": 0.0, "R5@0.5": 0.25, "R5@0.7": 0.25, "R10@0.5": 0.5, "R10@0.7": 0.5}
    assert r == want


def test_svmr_threshold_is_inclusive_and_order_is_given():
    # [0,2] vs [0,4]: IoU exactly 0.5 -> a hit at 0.5 (>=).
    # [1.6,2.3] vs [1.3,2.3]: exactly 0.7, but 0.7/1.0 comes out 0.6999999999999998 in floats -> still a hit
    assert temporal_iou([[1.6, 2.3]], [[1.3, 2.3]])[0, 0] < 0.7
    r = moment_recall([[(0, 2)], [(1.6, 2.3)]], [(0, 4), (1.3, 2.3)], ks=(1,), ious=(0.5, 0.7))
    assert r == {"R1@0.5": 1.0, "R1@0.7": 0.5}
    # ties: the list order is the rank; a duplicate takes its own rank
    r = moment_recall([[(9, 10), (9, 10), (0, 4)]], [(0, 4)], ks=(1, 2, 3), ious=(0.5,))
    assert r == {"R1@0.5": 0.0, "R2@0.5": 0.0, "R3@0.5": 1.0}


def test_vcmr_needs_the_right_video():
    golds = [("a", 0, 10), ("b", 0, 10)]
    preds = [
        # q0: rank 1 perfect span in the wrong video, rank 2 right video IoU 0.8
        [("b", 0, 10, 0.9), ("a", 1, 9, 0.8)],
        # q1: right span only in wrong videos
        [("a", 0, 10), ("c", 0, 10)],
    ]
    r = moment_recall(preds, golds)
    # R1: none; R5/R10: q0 -> 0.5
    assert r == {"R1@0.5": 0.0, "R1@0.7": 0.0, "R5@0.5": 0.5, "R5@0.7": 0.5, "R10@0.5": 0.5, "R10@0.7": 0.5}


def test_recall_errors_and_by_type():
    with pytest.raises(ValueError):
        moment_recall([], [])
    with pytest.raises(ValueError):
        moment_recall([[]], [(0, 1), (0, 1)])
    golds = [(0, 10), (0, 10), (0, 10)]
    preds = [[(0, 10)], [(50, 60)], [(0, 9)]]
    out = by_type(moment_recall, ["v", "t", "v"], preds, golds, ks=(1,), ious=(0.5,))
    assert out == {"v": {"R1@0.5": 1.0}, "t": {"R1@0.5": 0.0}}


# ---------------------------------------------------------------- QA
def test_qa_accuracy():
    assert qa_accuracy([0, 1, 2, 3], [0, 1, 4, 4]) == 0.5
    # scores: rows argmax -> 1, 0 (tie between 0 and 2 -> lowest index 0)
    assert qa_accuracy(np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.5]]), [1, 2]) == 0.5
    assert by_type(qa_accuracy, ["what", "who", "what"], [1, 2, 0], [1, 0, 0]) == {"what": 1.0, "who": 0.0}
    with pytest.raises(ValueError):
        qa_accuracy([], [])
    with pytest.raises(ValueError):
        qa_accuracy([1], [1, 2])


# ---------------------------------------------------------------- captioning
def test_tokenize():
    want = ["the", "cat", "it", "s", "on", "the", "mat", "3", "times"]
    assert tokenize("The cat, it's on the MAT.  3 times!") == want


def test_r4_hand_computed():
    preds = {
        # 4-grams: "a b c d", "b c d e" | "a b c d", "b c d f": 4 in all, "a b c d" once repeated -> 1/4
        "v1": ["a b c d e", "A b, c d f."],
        # 4-grams never cross sentences: "a b c" + "d e" has none -> 0
        "v2": ["a b c", "d e"],
        # one sentence repeating itself: "x y x y x y" -> xyxy, yxyx, xyxy: 3 in all, 1 repeated -> 1/3
        "v3": ["x y x y x y"],
    }
    assert repetition_r4(preds) == pytest.approx((1 / 4 + 0 + 1 / 3) / 3)
    # only videos listed (and present in predictions) count
    assert repetition_r4(preds, ["v1", "missing"]) == 0.25
    assert repetition_r4({}) == 0.0


def test_caption_metrics_hand_computed():
    # paragraph level: the two predicted sentences join into "the cat sat on the mat" (6 tokens)
    preds = {"v": ["The cat sat.", "On the mat."]}
    refs = {"v": ["the cat sat on a mat"]}
    m = caption_metrics(preds, refs, meteor=False)
    assert set(m) == {"BLEU4", "ROUGE_L", "CIDEr", "R4"}
    # clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths -> no brevity penalty
    assert m["BLEU4"] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, rel=1e-6)
    # LCS "the cat sat on mat" = 5 -> P = R = 5/6 -> F_beta = 5/6
    assert m["ROUGE_L"] == pytest.approx(5 / 6)
    # one video: CIDEr-D's idf is log(1) - log(df) = 0 for every n-gram
    assert m["CIDEr"] == 0.0
    assert m["R4"] == 0.0

    # a second reference video without prediction = empty paragraph; corpus BLEU counts: same matches over
    # 6 hypothesis tokens vs 6 + 5 reference tokens -> brevity penalty exp(1 - 11/6)
    refs2 = {**refs, "w": ["one two three four five"]}
    m2 = caption_metrics(preds, refs2, meteor=False)
    assert m2["BLEU4"] == pytest.approx(m["BLEU4"] * math.exp(1 - 11 / 6), rel=1e-6)
    assert m2["ROUGE_L"] == pytest.approx(5 / 6 / 2)
    assert m2["R4"] == 0.0  # R4 averages over predicted videos only


def test_caption_metrics_identical():
    refs = {
        "a": ["a red circle enters from the left", "the cat grows bigger"],
        "b": ["two blue squares move together", "then one of them leaves on the right"],
    }
    m = caption_metrics(refs, refs, meteor=False)
    assert m["BLEU4"] == pytest.approx(1.0)
    assert m["ROUGE_L"] == pytest.approx(1.0)
    # the two videos share no n-gram, so every idf is log 2 and hypothesis == reference vectors: cosine 1
    # for n = 1..4, no length penalty -> mean 1 x 10
    assert m["CIDEr"] == pytest.approx(10.0)
    assert m["R4"] == 0.0
    with pytest.raises(ValueError):
        caption_metrics({}, {}, meteor=False)


@pytest.mark.slow
@pytest.mark.skipif(not meteor_available(), reason="METEOR needs java (apt-get install default-jre-headless)")
def test_meteor_identical_and_disjoint():  # ~12 s: loads METEOR's paraphrase table
    refs = {"a": ["the cat sat on the mat"], "b": ["a dog runs in the park"]}
    m = caption_metrics(refs, refs, meteor=True)
    assert m["METEOR"] == pytest.approx(1.0)
    m = caption_metrics({"a": ["zebra xylophone"], "b": ["quantum yodel"]}, refs, meteor=True)
    assert m["METEOR"] == 0.0


def test_meteor_omitted_without_java(monkeypatch):
    import training.metrics as tm

    monkeypatch.setattr(tm, "meteor_available", lambda: False)
    refs = {"a": ["the cat sat"]}
    with pytest.warns(UserWarning, match="METEOR omitted"):
        assert "METEOR" not in caption_metrics(refs, refs)
    with pytest.raises(RuntimeError):
        caption_metrics(refs, refs, meteor=True)
