"""The HERO path of the app with a real (small, untrained) HeroForApp checkpoint: ingest stores HERO's
states keyed by the checkpoint, search and QA read them, a different checkpoint re-encodes."""

import json
import shutil

import numpy as np
import pytest
import torch

from demo.engine import HeroEngine
from demo.errors import InputError
from demo.library import Library
from demo.pipeline import IngestOptions, ingest
from demo.qa import answer_question
from demo.search import search_library, search_moments
from models.hero import build_hero, hero_mini_config
from models.io import save_pretrained
from tests.conftest import SAMPLE


def _checkpoint(path, seed, concept_tokens=0, asr_hold_s=0.0, **config):
    torch.manual_seed(seed)
    cfg = hero_mini_config(head="app")
    cfg.f_config.num_hidden_layers, cfg.c_config.num_hidden_layers = 1, 1
    cfg.concept_tokens, cfg.asr_hold_s = concept_tokens, asr_hold_s
    for k, v in config.items():
        setattr(cfg, k, v)
    save_pretrained(build_hero(cfg), path, cfg, dtype=torch.float16)
    return str(path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return _checkpoint(d / "a", 0), _checkpoint(d / "b", 1, concept_tokens=3)


def test_hero_states_cached_per_checkpoint(sample_record, data_dir, ckpts, tmp_path):
    lib = Library(tmp_path / "lib")
    rec = ingest(SAMPLE, library=lib, options=IngestOptions(checkpoint=ckpts[0], tracks=()))
    a = HeroEngine(ckpts[0])
    assert rec.info["hero_key"] == a.key and rec.arrays["hero.v_temp"].shape == (rec.n_frames, 384)
    stored = lib.get(rec.video_id)
    np.testing.assert_allclose(
        stored.arrays["hero.v_temp"], rec.arrays["hero.v_temp"], atol=2e-2
    )  # fp16 on disk
    again = ingest(SAMPLE, library=lib, options=IngestOptions(checkpoint=ckpts[1], tracks=()))
    b = HeroEngine(ckpts[1])
    assert again.info["hero_key"] == b.key != a.key  # another checkpoint re-encodes, nothing else reruns
    assert not np.allclose(again.arrays["hero.fused"], rec.arrays["hero.fused"])
    feats, subs = b.video_inputs(again)
    assert len(subs) == len(again.subtitles) + again.n_frames  # concept tokens: one text per frame


def test_hero_reads_whisper_lines_held_and_a_users_file_as_is(sample_record, tmp_path):
    """config.asr_hold_s: Whisper's lines reach HERO held until the next line (at most that long);
    subtitles from the user's file keep their times. The hold is in config.json, so states re-encode."""
    from dataclasses import replace

    from demo.subtitles import align_to_frames, held

    engine = HeroEngine(_checkpoint(tmp_path / "held", 0, asr_hold_s=3.0))
    assert engine.key != HeroEngine(_checkpoint(tmp_path / "plain", 0)).key
    n, dt, subs = sample_record.n_frames, sample_record.frame_interval, sample_record.subtitles
    assert sample_record.subtitles_source.startswith("whisper")
    frames = [f for _, f in engine.video_inputs(sample_record)[1]]
    assert frames == align_to_frames(held(subs, 3.0), n, dt) != align_to_frames(subs, n, dt)
    from_file = replace(sample_record, subtitles_source="file:sample.srt")
    assert [f for _, f in engine.video_inputs(from_file)[1]] == align_to_frames(subs, n, dt)


def test_hero_without_a_say_leaves_the_text_matchers_ranking(sample_record, ckpts):
    """Gated out (share 0), HERO's candidate order must not decide between spans the text matcher
    scores alike (it did: on real footage a tie went to HERO's order)."""
    from dataclasses import replace

    engine = HeroEngine(ckpts[0])
    engine.gate = (5.0, 6.0)  # video scores are cosines <= 1: HERO never gets a share
    # the same label on every frame and no subtitles: every span stands out alike (a total tie)
    flat = replace(sample_record, subtitles=[], concepts=[["cup"]] * sample_record.n_frames)
    for rec, q in ((sample_record, "a rocket"), (sample_record, "a cup of coffee"), (flat, "a cup")):
        hero = search_moments(rec, q, top_k=3, engine=engine)
        text = search_moments(rec, q, top_k=3)
        assert hero.extra["hero_weight"] == 0 and hero.method == "hero+text"
        assert (hero.moments[0].start, hero.moments[0].end) == (text.moments[0].start, text.moments[0].end), q


def test_search_and_answer_through_hero(sample_record, ckpts, tmp_path):
    engine = HeroEngine(ckpts[0])
    res = search_moments(sample_record, "a rocket", top_k=5, engine=engine)
    assert res.method == "hero+text" and 1 <= len(res.moments) <= 5
    assert res.saliency.shape == (sample_record.n_frames,)
    assert all(0 <= m.start < m.end <= sample_record.meta.duration + 1e-6 for m in res.moments)
    # HERO's own span band (official decoding: end - start >= 2 frames) unless the user bounds it
    dt, dur = sample_record.frame_interval, sample_record.meta.duration
    assert all(m.end - m.start >= 3 * dt - 1e-6 or m.end >= dur - 1e-6 for m in res.moments)
    short = search_moments(sample_record, "a rocket", top_k=20, min_len=1.5, engine=engine)
    assert any(m.end - m.start < 3 * dt - 1e-6 for m in short.moments)
    ans = answer_question(
        sample_record, "What is on the saucer?", ["a spoon", "a cat", "a rocket"], engine=engine
    )
    assert ans.method == "hero+text" and 0 <= ans.hero_weight <= 1 and sum(ans.scores) == pytest.approx(1.0)
    assert 0 <= ans.evidence[0] < ans.evidence[1] <= sample_record.meta.duration + 1e-6
    lib = Library(tmp_path / "lib")
    ingest(SAMPLE, library=lib, options=IngestOptions(checkpoint=ckpts[0], tracks=()))
    moments = search_library(lib, "a rocket", engine=engine)
    assert moments and (lib.root / "index" / f"hero-{engine.key}.faiss").is_file()


def test_hero_has_no_say_where_it_does_not_recognise_the_query(sample_record, ckpts, tmp_path):
    """The gate on HERO's own video score (the checkpoint's config.json `app_gate`, else HERO_GATE):
    below it, search and QA give what the text matcher gives (real footage, sounds, signs: HERO never
    saw them); past it, HERO takes its full share. A gate that is not [low, high] is one clear error."""
    import demo.search as search

    def gated(gate):
        d = tmp_path / str(gate)
        shutil.copytree(ckpts[0], d)
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(cfg | {"app_gate": gate}))
        return HeroEngine(d)

    assert HeroEngine(ckpts[0]).gate == search.HERO_GATE
    for bad in ([0.5, 0.2], "high", [0.1, "x"]):
        with pytest.raises(InputError, match="app_gate"):
            gated(bad)

    # the library's first stage: one share per query, from HERO's best video
    assert search.fuse_first_stage(np.array([0.1, 0.2]), np.array([0.5, 0.4])) == pytest.approx([0.5, 0.4])
    assert search.fuse_first_stage(np.array([0.1, 0.9]), np.array([0.5, 0.5])) == pytest.approx(
        [0.7 * 0.1 + 0.3 * 0.5, 0.7 * 0.9 + 0.3 * 0.5]
    )
    engine = gated([2.0, 3.0])  # a cosine never reaches it: HERO has no say
    query, question, cands = "a rocket", "What is on the saucer?", ["a spoon", "a cat", "a rocket"]
    text = search_moments(sample_record, query, top_k=3)
    text_answer = answer_question(sample_record, question, cands)
    off = search_moments(sample_record, query, top_k=3, engine=engine)
    assert off.method == "hero+text" and off.extra["hero_weight"] == 0
    assert [(m.start, m.end) for m in off.moments[:1]] == [(m.start, m.end) for m in text.moments[:1]]
    np.testing.assert_allclose(off.saliency, text.saliency, atol=1e-6)
    ans = answer_question(sample_record, question, cands, engine=engine)
    assert ans.hero_weight == 0 and ans.scores == pytest.approx(text_answer.scores, abs=1e-6)
    engine = gated([-2.0, -1.0])  # always past it: HERO's full share
    on = search_moments(sample_record, query, top_k=3, engine=engine)
    assert on.extra["hero_weight"] == pytest.approx(1 - search.TEXT_WEIGHT)
    assert answer_question(sample_record, question, cands, engine=engine).hero_weight == 1


def test_a_checkpoint_on_the_official_qa_input_answers_from_frames_fused_with_each_candidate(
    sample_record, tmp_path
):
    """config.qa_in_subtitles (official TVQA input): the app fuses the frames anew with each candidate
    appended to every subtitle, and HERO's answer is what those frames give, not the cached ones."""
    from models.hero_api import answer_candidates, encode_candidates

    engine = HeroEngine(_checkpoint(tmp_path / "qa", 0, qa_in_subtitles=True, app_gate=[-2.0, -1.0]))
    question, cands = "What is on the saucer?", ["a spoon", "a cat", "a rocket"]
    ans = answer_question(sample_record, question, cands, engine=engine)
    assert ans.method == "hero+text" and ans.hero_weight == 1
    qa_ids = engine.qa_token_ids(question, cands)
    fused = encode_candidates(engine.model, *engine.video_inputs(sample_record), qa_ids)
    assert fused.shape == (3, sample_record.n_frames, 384)
    own = answer_candidates(engine.model, fused, qa_ids)["scores"]
    cached = answer_candidates(engine.model, engine.states(sample_record)[1], qa_ids)["scores"]
    assert ans.scores == pytest.approx(own.softmax(0).tolist(), abs=1e-6)
    assert (own - cached).abs().max() > 1e-4  # an untrained head: small, but not the cached frames' scores


def test_bad_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot load the HERO checkpoint"):
        HeroEngine(tmp_path)


def test_checkpoint_none_means_the_text_matcher(sample_record):
    """`--checkpoint none` (or HEROVID_CHECKPOINT=none) turns HERO off even when one is shipped."""
    from demo.engine import load_engine

    assert load_engine("none") is None and load_engine("None") is None
    assert search_moments(sample_record, "a person talking", engine=load_engine("none")).method == "text"
