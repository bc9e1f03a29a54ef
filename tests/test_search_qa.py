"""Search and QA on the sample, as a user would check them: the top moment overlaps the shot the query
describes, the answer is the right candidate with evidence in the right place, errors are one line."""

import json

import numpy as np
import pytest

from demo.errors import InputError
from demo.library import Library
from demo.pipeline import ingest
from demo.qa import answer_question
from demo.search import search_library, search_moments, spans_from_saliency
from synthtv.mp4 import write_mp4
from tests.conftest import run_cli


def _shot(script, photo):
    s = next(s for s in script["shots"] if s["photo"] == photo)
    return s["start"], s["end"]


def _overlap(a, b):
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_spans_from_saliency_known_answer():
    sal = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.8, 0.9, 0.1, 0.1, 0.2])
    spans = spans_from_saliency(sal, min_f=2, max_f=5, top_k=3)
    assert spans[0][:2] == (4, 7)  # exactly the bump
    assert spans[0][2] == pytest.approx(np.mean([0.9, 0.8, 0.9]))
    assert all(2 <= e - s <= 5 for s, e, _ in spans)
    assert spans_from_saliency(np.zeros(0), 1, 3, 5) == []


@pytest.mark.parametrize(
    "query,photo",
    [
        ("a ginger cat staring at us", "chelsea"),
        ("a rocket ready for launch", "rocket"),
        ("espresso", "coffee"),
    ],
)
def test_top_moment_overlaps_the_described_shot(sample_record, sample_script, query, photo):
    res = search_moments(sample_record, query, top_k=5)
    top = res.moments[0]
    shot = _shot(sample_script, photo)
    assert _overlap((top.start, top.end), shot) >= 0.5 * min(top.end - top.start, shot[1] - shot[0]), (
        top,
        shot,
    )
    assert len(res.saliency) == sample_record.n_frames and 0 <= res.saliency.min() <= res.saliency.max() <= 1
    assert [m.score for m in res.moments] == sorted((m.score for m in res.moments), reverse=True)
    assert top.text  # the subtitles spoken inside are attached


def test_span_length_controls(sample_record):
    res = search_moments(sample_record, "a cup of coffee", top_k=10, min_len=3.0, max_len=6.0)
    assert all(3.0 - 1e-6 <= m.end - m.start <= 6.0 + 1e-6 for m in res.moments)
    with pytest.raises(InputError, match="query is empty"):
        search_moments(sample_record, "   ")


def test_library_search_finds_the_right_video(sample_record, data_dir, tmp_path):
    lib = Library(tmp_path / "lib")
    ingest(sample_record.media_path, library=lib)
    grey = tmp_path / "grey.mp4"
    write_mp4(grey, [np.full((120, 160, 3), 128, np.uint8)] * 40, fps=10, audio=None)
    other = ingest(grey, library=lib)
    moments = search_library(lib, "the rocket on its launch pad", top_k=5)
    assert moments and moments[0].video_id == sample_record.video_id
    assert all(m.video_id in (sample_record.video_id, other.video_id) for m in moments)
    assert (lib.root / "index" / "text.faiss").is_file()  # the first stage is a saved faiss index
    lib.remove(other.video_id)
    assert {m.video_id for m in search_library(lib, "grey", top_k=5)} <= {sample_record.video_id}


def test_answer_with_user_candidates(sample_record, sample_script):
    a = answer_question(
        sample_record, "Which animal looks at the camera?", ["a dog", "a cat", "a horse", "a bird"]
    )
    assert a.answer == "a cat" and a.candidates_source == "user"
    assert sum(a.scores) == pytest.approx(1.0) and a.scores[a.answer_index] == max(a.scores)
    assert _overlap(a.evidence, _shot(sample_script, "chelsea")) > 0


def test_proposed_candidates_are_flagged(sample_record):
    a = answer_question(sample_record, "What sits on the saucer?")
    assert a.candidates_source == "proposed" and 2 <= len(a.candidates) <= 5
    assert "spoon" in a.answer or "coffee" in a.answer or "cup" in a.answer
    with pytest.raises(InputError, match="question is empty"):
        answer_question(sample_record, " ")
    with pytest.raises(InputError, match="at most"):
        answer_question(sample_record, "why?", [str(i) for i in range(20)])


def test_cli_search_and_ask_json(sample_record, data_dir):
    r = run_cli(
        "search",
        sample_record.video_id,
        "galaxies in the night sky",
        "--top-k",
        "3",
        "--json",
        data_dir=data_dir,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["video_id"] == sample_record.video_id and len(out["moments"]) == 3
    assert (
        set(out["moments"][0]) >= {"start", "end", "score"} and len(out["saliency"]) == sample_record.n_frames
    )
    assert out["moments"][0]["end"] > 27.0
    r = run_cli("search", "--library", "galaxies", "--json", data_dir=data_dir)
    assert r.returncode == 0 and json.loads(r.stdout)["moments"][0]["video_id"] == sample_record.video_id
    r = run_cli("ask", sample_record.video_id, "What stands on the launch pad?", "--options", "a rocket|a tree|a cup",
                "--json", data_dir=data_dir)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"] == "a rocket" and out["answer_index"] == 0 and out["candidates_source"] == "user"
    assert set(out["evidence"]) == {"start", "end"}
    r = run_cli("ask", "no-such-id", "why?", data_dir=data_dir)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no-such-id" in r.stderr
