"""The app through its API, as gradio_client users drive it: one app launched on 127.0.0.1 for the module,
the sample ingested once; search, ask and caption when their services are part of the build."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from demo.library import Library, content_hash  # noqa: E402
from demo.ui import service  # noqa: E402
from tests.app_server import launched_app  # noqa: E402
from tests.conftest import SAMPLE  # noqa: E402


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def app_url(data_dir, examples_dir):
    with launched_app(data_dir, examples_dir) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def ingested(client):
    """The 12 ingest outputs (player, details, transcript, timeline, srt, vtt, ...)."""
    return client.predict(handle_file(str(SAMPLE)), None, api_name="/ingest")


def needs(name: str):
    return pytest.mark.skipif(service(name) is None, reason=f"demo/{name}.py has not landed yet")


def hero_shipped() -> bool:
    engine = service("engine")
    return engine is not None and engine.load_engine() is not None


def test_ingest_shows_player_transcript_timeline_and_downloads(ingested):
    player, details, transcript, timeline, srt, vtt = ingested[:6]
    assert details["video_id"] == content_hash(SAMPLE)
    assert details["n_frames"] == 22 and details["n_subtitles"] >= 4 and details["language"] == "en"
    assert player["value"].endswith(".mp4") and Path(player["value"]).is_file()
    assert player["subtitles"] and Path(player["subtitles"]).read_text().startswith("WEBVTT")
    assert transcript.count('class="hv-line hv-said"') == details["n_subtitles"]
    assert "astronaut" in transcript.lower()
    assert 'class="tl"' in timeline and timeline.count("tl-sub") >= details["n_subtitles"]
    assert Path(srt).read_text().startswith("1\n00:00:")
    assert Path(vtt).read_text().startswith("WEBVTT\n\n00:00:")


def test_repeated_upload_is_a_cache_hit(client, ingested, monkeypatch):
    import demo.asr
    import demo.features

    def boom(*a, **k):
        raise AssertionError("recomputed on a repeated upload")

    monkeypatch.setattr(demo.asr, "transcribe", boom)  # the app runs in this process
    monkeypatch.setattr(demo.features, "load_frame_encoder", boom)
    again = client.predict(handle_file(str(SAMPLE)), None, api_name="/ingest")
    assert again[1]["video_id"] == ingested[1]["video_id"]


def test_sample_example_is_cached_lazily(client, ingested, examples_dir, monkeypatch):
    import demo.pipeline

    assert not list(examples_dir.rglob("log.csv")), "cached at launch: should be at first use"
    first = client.predict(0, api_name="/example")  # details, transcript, timeline, SRT, VTT
    assert first[0]["video_id"] == content_hash(SAMPLE) and "astronaut" in first[1].lower()
    assert Path(first[4]).read_text().startswith("WEBVTT")
    assert list(examples_dir.rglob("log.csv"))

    def boom(*a, **k):
        raise AssertionError("the cached example ran ingest again")

    monkeypatch.setattr(demo.pipeline, "ingest", boom)  # the app runs in this process
    again = client.predict(0, api_name="/example")
    assert again[0] == first[0] and again[1] == first[1]


def test_bad_uploads_are_one_line_errors(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(AppError, match=r"[Ff]ile type.*\.mp4") as e:
        client.predict(handle_file(str(text)), None, api_name="/ingest")
    assert "\n" not in str(e.value).strip() and "Traceback" not in str(e.value)

    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(AppError, match=r"^broken\.mp4: not a readable video") as e:
        client.predict(handle_file(str(fake)), None, api_name="/ingest")
    assert "/" not in str(e.value) and "Errno" not in str(e.value)  # the file's name, not the temp path

    bad_subs = tmp_path / "subs.srt"
    bad_subs.write_text("this is not a subtitle file\n")
    with pytest.raises(AppError, match=r"subs\.srt: not a valid SRT/WebVTT file"):
        client.predict(handle_file(str(SAMPLE)), handle_file(str(bad_subs)), api_name="/ingest")


def test_track_kinds_chosen_at_ingest(client, ingested):
    """The "Recognise" choices reach ingest: sounds left out are gone from the video, and ticked again
    they come back (the default, which an API call that leaves the choice out gets)."""
    kinds = lambda out: {e["kind"] for e in out[1]["tracks"]}  # noqa: E731
    assert {"object", "sound"} <= kinds(ingested)
    only_objects = client.predict(handle_file(str(SAMPLE)), None, ["object"], api_name="/ingest")
    assert kinds(only_objects) == {"object"}
    assert client.predict(handle_file(str(SAMPLE)), None, [], api_name="/ingest")[1]["tracks"] == []
    again = client.predict(handle_file(str(SAMPLE)), None, api_name="/ingest")
    assert {"object", "sound"} <= kinds(again)


def test_user_subtitles_then_remove_from_library(app_url, tmp_path, data_dir):
    from synthtv.mp4 import write_mp4

    rng = np.random.default_rng(0)
    video = tmp_path / "silent.mp4"
    write_mp4(video, [np.full((96, 128, 3), rng.integers(0, 255, 3), np.uint8) for _ in range(20)], fps=10)
    c = Client(app_url, verbose=False)
    out = c.predict(handle_file(str(video)), None, api_name="/ingest")
    vid = out[1]["video_id"]
    assert out[1]["has_audio"] is False and "No speech" in out[2]

    srt = tmp_path / "mine.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nMy own words.\n")
    out = c.predict(handle_file(str(video)), handle_file(str(srt)), api_name="/ingest")
    assert out[1]["video_id"] == vid and out[1]["n_subtitles"] == 1 and "My own words." in out[2]
    assert Library(data_dir).get(vid) is not None

    library_html, _, player = c.predict(vid, api_name="/library_remove")[:3]
    assert Library(data_dir).get(vid) is None and vid not in library_html
    assert player is None  # the removed video was this session's: the player is cleared


@needs("search")
def test_search(client, ingested):
    moments, timeline, payload, path = client.predict(
        "a ginger cat looks at the camera", 5, 0, 0, api_name="/search"
    )
    assert 1 <= len(payload["moments"]) <= 5 and len(payload["saliency"]) == 22
    top = payload["moments"][0]
    assert 0 <= top["start"] < top["end"] <= 33.5
    assert moments.count("hv-card hv-moment") == len(payload["moments"]) and "data:image/jpeg" in moments
    assert timeline.count("tl-band tl-moment") == len(payload["moments"]) and "tl-curve" in timeline
    assert json.loads(Path(path).read_text()) == payload
    method = "hero+text" if hero_shipped() else "text"
    assert payload["method"] == method
    assert ("Ranked by HERO" if hero_shipped() else "no HERO checkpoint is loaded") in moments


@needs("search")
def test_sessions_are_separate(app_url, ingested):
    with pytest.raises(AppError, match="Upload a video first"):
        Client(app_url, verbose=False).predict("a cat", 5, 0, 0, api_name="/search")


@needs("search")
def test_library_search(client, ingested):
    html, payload = client.predict("a rocket on the launch pad", 10, api_name="/library_search")
    assert payload["videos"] and payload["videos"][0]["video_id"] == content_hash(SAMPLE)
    assert "<video" in html and "hv-chip" in html


@needs("qa")
def test_ask_with_candidates_and_proposed(client, ingested):
    answer, timeline, payload, _ = client.predict(
        "What animal looks at the camera?", "a dog\na ginger cat\na horse", api_name="/ask"
    )
    assert payload["candidates_source"] == "user" and len(payload["scores"]) == 3
    assert abs(sum(payload["scores"]) - 1) < 1e-3
    assert payload["evidence"]["start"] < payload["evidence"]["end"]
    assert "tl-evidence" in timeline and "Jump to the evidence" in answer
    assert payload["method"] == ("hero+text" if hero_shipped() else "text")
    assert ("HERO's QA head" if hero_shipped() else "no HERO checkpoint is loaded") in html.unescape(answer)
    _, _, proposed, _ = client.predict("What animal looks at the camera?", "", api_name="/ask")
    assert proposed["candidates_source"] == "proposed" and len(proposed["candidates"]) >= 2


@needs("captions")
def test_caption(client, ingested):
    chapters, timeline, payload, vtt, js = client.predict(api_name="/caption")
    assert payload["segments"] and all(s["text"] for s in payload["segments"])
    assert "tl-chapter" in timeline
    assert Path(vtt).read_text().startswith("WEBVTT")
    assert json.loads(Path(js).read_text())["segments"] == payload["segments"]
    text = client.predict(7.5, 10.5, api_name="/caption_moment")
    assert "0:07" in text
