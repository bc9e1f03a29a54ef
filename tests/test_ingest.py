"""Ingest through the CLI as a user runs it: the JSON contract, the cache, and every kind of bad input."""

import json
import shutil

import numpy as np
import pytest

from demo.library import SCHEMA_VERSION, Library, content_hash
from demo.pipeline import ingest
from synthtv.mp4 import write_mp4
from tests.conftest import SAMPLE, run_cli


def _frames(n, w=160, h=120, seed=0):
    rng = np.random.default_rng(seed)
    return [np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8) for _ in range(n)]


def test_cli_ingest_json_contract(tmp_path, sample_script):
    r = run_cli("ingest", str(SAMPLE), "--json", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in (
        "video_id",
        "duration",
        "frame_interval",
        "n_frames",
        "has_audio",
        "language",
        "subtitles",
        "concepts",
        "feature_dim",
        "timings",
    ):
        assert key in out
    assert out["video_id"] == content_hash(SAMPLE)
    assert out["n_frames"] == 22 and len(out["concepts"]) == 22 and out["feature_dim"] == 1280
    assert out["has_audio"] and out["language"] == "en" and len(out["subtitles"]) >= 4
    assert "transcribing" in r.stderr  # the progress bar names its stages

    # export-subtitles reads the library entry
    srt = run_cli("export-subtitles", str(SAMPLE), "--format", "srt", data_dir=tmp_path)
    assert srt.returncode == 0 and srt.stdout.startswith("1\n00:00:")
    vtt_path = tmp_path / "sample.vtt"
    vtt = run_cli(
        "export-subtitles", out["video_id"], "--format", "vtt", "--out", str(vtt_path), data_dir=tmp_path
    )
    assert vtt.returncode == 0 and vtt_path.read_text().startswith("WEBVTT\n\n00:00:")


def test_reingest_is_a_cache_hit(sample_record, data_dir, monkeypatch):
    import demo.asr
    import demo.features

    def boom(*a, **k):
        raise AssertionError("recomputed on a cache hit")

    monkeypatch.setattr(demo.asr, "transcribe", boom)
    monkeypatch.setattr(demo.features, "load_frame_encoder", boom)
    again = ingest(SAMPLE, library=Library(data_dir))
    assert again.video_id == sample_record.video_id
    np.testing.assert_allclose(again.features, sample_record.features, atol=1e-2)  # float16 on disk
    assert again.subtitles == sample_record.subtitles


def test_subtitles_cut_by_an_older_splitter_are_redone(sample_record, tmp_path, monkeypatch):
    """A record whose Whisper subtitles were cut by an older rule (no `subtitle_lines`, or another
    version) is re-transcribed on ingest; its frames are reused."""
    from dataclasses import replace

    import demo.asr
    import demo.features
    from demo.asr import Transcript
    from demo.subtitles import Subtitle

    lib = Library(tmp_path / "lib")
    info = {k: v for k, v in sample_record.info.items() if k != "subtitle_lines"}
    lib.put(replace(sample_record, info=info))
    calls = []

    def transcribe(*a, **k):
        calls.append(1)
        return Transcript([Subtitle(0.5, 2.0, "Fresh lines.")], "en", 1.0)

    monkeypatch.setattr(demo.asr, "transcribe", transcribe)
    monkeypatch.setattr(demo.features, "load_frame_encoder", lambda *a, **k: pytest.fail("frames recomputed"))
    again = ingest(SAMPLE, library=lib)
    assert calls == [1] and [s.text for s in again.subtitles] == ["Fresh lines."]
    assert again.info["subtitle_lines"] == demo.asr.LINES_VERSION
    ingest(SAMPLE, library=lib)  # now current: a cache hit
    assert calls == [1]


def test_user_subtitles_replace_whisper_and_reuse_features(sample_record, data_dir, tmp_path, monkeypatch):
    import demo.asr

    monkeypatch.setattr(
        demo.asr, "transcribe", lambda *a, **k: pytest.fail("Whisper ran despite --subtitles")
    )
    srt = tmp_path / "mine.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:03,000\nMy own words.\n")
    lib = Library(tmp_path / "lib")
    rec = ingest(SAMPLE, srt, library=lib)
    assert [s.text for s in rec.subtitles] == ["My own words."] and rec.subtitles_source.startswith(
        "file:mine.srt"
    )


def test_corrupt_and_outdated_entries_are_rebuilt(sample_record, data_dir, tmp_path):
    lib = Library(tmp_path / "lib")
    shutil.copy(
        Library(data_dir).record_path(sample_record.video_id), lib.record_path(sample_record.video_id)
    )
    path = lib.record_path(sample_record.video_id)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert lib.get(sample_record.video_id) is None
    sample_record.save(path)
    raw = path.read_bytes().replace(f'"schema_version": {SCHEMA_VERSION}'.encode(), b'"schema_version": 0')
    path.write_bytes(raw)
    assert lib.get(sample_record.video_id) is None


def test_no_audio_track_still_ingests_frames(tmp_path):
    video = tmp_path / "silent.mp4"
    write_mp4(video, _frames(30), fps=10, audio=None)
    r = run_cli("ingest", str(video), "--json", "--quiet", data_dir=tmp_path / "lib")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["has_audio"] is False and out["subtitles"] == [] and out["n_frames"] == 2


def test_shorter_than_one_interval_gives_one_frame(tmp_path):
    video = tmp_path / "blink.mp4"
    write_mp4(video, _frames(5), fps=10, audio=np.zeros(8000, np.float32))
    r = run_cli("ingest", str(video), "--json", "--quiet", data_dir=tmp_path / "lib")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_frames"] == 1
    assert "shorter than one 1.5 s interval" in r.stderr


def _assert_clean_failure(r, name, phrase, lib_dir):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and phrase in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    videos = lib_dir / "videos"
    assert not videos.exists() or not any(videos.iterdir())  # no partial library entry


@pytest.mark.parametrize(
    "name,content,phrase",
    [
        ("notes.mp4", b"hello, I am a text file\n" * 100, "not a readable video"),
        ("empty.mp4", b"", "the file is empty"),
        ("missing.mp4", None, "no such file"),
    ],
)
def test_bad_video_files(tmp_path, name, content, phrase):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    r = run_cli("ingest", str(path), "--quiet", data_dir=tmp_path / "lib")
    _assert_clean_failure(r, name, phrase, tmp_path / "lib")


def test_truncated_container(tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(SAMPLE.read_bytes()[: SAMPLE.stat().st_size // 3])
    r = run_cli("ingest", str(path), "--quiet", data_dir=tmp_path / "lib")
    _assert_clean_failure(r, "cut.mp4", "", tmp_path / "lib")


def test_bad_subtitle_file(tmp_path):
    subs = tmp_path / "broken.srt"
    subs.write_text("1\n00:00:01,000 --> soon\nwhat\n")
    r = run_cli("ingest", str(SAMPLE), "--subtitles", str(subs), "--quiet", data_dir=tmp_path / "lib")
    _assert_clean_failure(r, "broken.srt", "not a valid SRT/WebVTT", tmp_path / "lib")


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data directory should be")
    r = run_cli("ingest", str(SAMPLE), "--quiet", data_dir=blocker / "lib")
    assert r.returncode == 2 and "data directory is not writable" in r.stderr and "Traceback" not in r.stderr


def test_concept_tracks_on_off_without_recomputing(sample_record, data_dir, tmp_path, monkeypatch):
    """Default tracks are present; turning a kind off removes it everywhere; turning one on computes only it."""
    import demo.features
    import demo.perception.objects
    from demo.pipeline import IngestOptions

    kinds = {e.kind for e in sample_record.tracks()}
    assert "object" in kinds and "sound" in kinds
    cat = [e for e in sample_record.tracks() if e.kind == "object" and e.label == "cat"]
    assert cat and cat[0].start < 13.5 and cat[0].end > 7.0  # the cat is seen in the cat's shot
    lib = Library(tmp_path / "lib")
    shutil.copy(
        Library(data_dir).record_path(sample_record.video_id), lib.record_path(sample_record.video_id)
    )

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(demo.features, "load_frame_encoder", boom)
    off = ingest(SAMPLE, library=lib, options=IngestOptions(tracks=("sound",)))
    assert {e.kind for e in off.tracks()} == {"sound"}
    assert not any("cat" == n for names in off.frame_labels() for n in names[:1] if names)
    assert {e.kind for e in lib.get(off.video_id).tracks()} == {"sound"}  # saved that way
    monkeypatch.setattr(demo.perception.objects.ObjectDetector, "run", boom)
    monkeypatch.setattr("demo.perception.stage.tag_sound_events", boom)
    again = ingest(SAMPLE, library=lib, options=IngestOptions(tracks=("sound", "screen_text")))
    assert {e.kind for e in again.tracks()} <= {"sound", "screen_text"}
    assert again.info["track_kinds"] == ["screen_text", "sound"]
