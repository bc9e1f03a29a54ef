"""The UI's pure pieces: the timeline HTML, the HTML fragments, thumbnails, upload checks."""

from __future__ import annotations

import re
from types import SimpleNamespace as NS

import numpy as np
import pytest

from demo.errors import InputError
from demo.subtitles import Subtitle
from demo.thumbs import frame_indices, thumbnails, to_data_uri
from demo.timeline import format_span, format_time, render_timeline, saliency_path, tick_step
from demo.tracks import ConceptEvent
from demo.views import answer_html, library_results_html, moments_html, transcript_html
from tests.conftest import SAMPLE

SUBS = [Subtitle(0.6, 4.5, "An astronaut <smiles> & waves"), Subtitle(7.6, 10.2, "A ginger cat")]


def _lefts(html: str, cls: str) -> list[float]:
    return [float(x) for x in re.findall(rf'class="tl-band {cls}[^"]*" [^>]*style="left:([\d.]+)%', html)]


def test_time_formats():
    assert format_time(12.9) == "0:12" and format_time(3725) == "1:02:05"
    assert format_span(7.6, 10.25) == "0:07.6–0:10.2"
    assert tick_step(33) == 5 and tick_step(3600) == 600 and tick_step(5) == 1


def test_timeline_draws_every_lane_at_the_right_place():
    moments = [NS(start=21.0, end=24.0, score=0.9), NS(start=7.5, end=10.5, score=0.3)]
    chapters = [NS(start=0.0, end=15.0, text="a cat"), NS(start=15.0, end=33.0, text="a rocket")]
    tracks = [ConceptEvent("object", 3.0, 6.0, "person", 0.8), ConceptEvent("sound", 1.0, 2.0, "Speech", 0.6)]
    html = render_timeline(
        33.0,
        saliency=np.linspace(0, 1, 22),
        subtitles=SUBS,
        moments=moments,
        chapters=chapters,
        evidence=(7.5, 10.5),
        tracks=tracks,
    )
    assert html.count("tl-band tl-sub") == 2 and html.count("tl-band tl-moment") == 2
    assert html.count("tl-band tl-chapter") == 2 and "tl-evidence" in html and "tl-selected" not in html
    assert "Objects" in html and "Sounds" in html and "Actions" not in html
    assert _lefts(html, "tl-sub") == [
        pytest.approx(100 * 0.6 / 33, abs=1e-3),
        pytest.approx(100 * 7.6 / 33, abs=1e-3),
    ]
    # the best moment is drawn last (on top) and every band seeks to its start
    assert re.findall(r'tl-moment" data-t="([\d.]+)"', html) == ["7.500", "21.000"]
    assert "&lt;smiles&gt; &amp; waves" in html and "<smiles>" not in html
    assert 'data-duration="33.000"' in html


def test_timeline_without_speech_or_results_says_so():
    html = render_timeline(10.0, subtitles=[])
    assert "no speech" in html and "Relevance" not in html and "Moments" not in html
    assert "tl-playhead" in html
    assert 'data-duration="1.000"' in render_timeline(0.0)  # a broken duration never divides by zero


def test_saliency_path_has_one_point_per_frame_inside_the_box():
    path = saliency_path([0.0, 0.5, 1.0, 2.0], interval=1.5, duration=6.0)
    pts = [tuple(map(float, p.split(","))) for p in re.findall(r"L([\d.]+,[\d.]+)", path)]
    assert len(pts) == 1 + 4 + 2  # left edge, frames, right edge + baseline
    ys = [y for _, y in pts[1:5]]
    assert ys[0] == 100.0 and ys[2] == pytest.approx(4.0) and ys[3] == pytest.approx(4.0)  # clipped to 1
    assert all(0.0 <= x <= 1000.0 for x, _ in pts)


def test_fragments_are_clickable_and_escaped():
    t = transcript_html(SUBS, "whisper:base")
    assert t.count('data-t="') == 2 and "&lt;smiles&gt;" in t
    assert "No speech" in transcript_html([])
    m = moments_html([NS(start=7.5, end=10.5, score=0.5)], [None], ["A <b>cat</b>"], "cat")
    assert 'data-start="7.500" data-end="10.500"' in m and "&lt;b&gt;cat" in m
    assert "No moment found" in moments_html([], [], [], "dog")
    ans = NS(
        answer="a cat",
        answer_index=1,
        scores=[0.2, 0.8],
        candidates=["a dog", "a cat"],
        evidence=(7.5, 10.5),
        candidates_source="proposed",
    )
    a = answer_html(ans)
    assert "confidence 80%" in a and 'class="hv-jump" data-t="7.500"' in a and "proposed" in a
    rec = NS(video_id="abc", source_name="x.mp4", media_path="/lib/media/abc.mp4")
    lib = library_results_html([(rec, [NS(start=1.0, end=2.0, score=0.5)])], "q")
    assert 'src="/gradio_api/file=/lib/media/abc.mp4"' in lib and 'data-video="abc"' in lib


def test_thumbnails_of_the_sample():
    assert frame_indices([0.0, 1.0, 99.0], fps=12.0, n_video_frames=396) == [0, 12, 395]
    uris = thumbnails(SAMPLE, [1.0, 22.0, 22.0], fps=12.0, n_video_frames=396, width=96)
    assert len(uris) == 3 and all(u.startswith("data:image/jpeg;base64,") for u in uris)
    assert uris[1] == uris[2] and uris[0] != uris[1]
    assert thumbnails(SAMPLE.with_name("missing.mp4"), [1.0], 12.0, 396) == [None]
    assert thumbnails(SAMPLE, [], 12.0, 396) == []
    small = to_data_uri(np.zeros((360, 640, 3), np.uint8), width=64)
    from base64 import b64decode
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(b64decode(small.split(",", 1)[1]))).size == (64, 36)


def test_upload_checks(tmp_path, monkeypatch):
    from demo import ui

    with pytest.raises(InputError, match=r"notes\.txt: unsupported file type \.txt"):
        ui.check_upload(tmp_path / "notes.txt")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 3 * 2**20)
    monkeypatch.setattr(ui, "MAX_UPLOAD_MB", 2.0)
    with pytest.raises(InputError, match=r"big\.mp4: 3\.0 MB is over the 2 MB upload limit"):
        ui.check_upload(big)
    monkeypatch.setattr(ui, "MAX_MINUTES", 1.0)
    with pytest.raises(InputError, match=r"90\.0 s|1\.5 min is over the 1 min limit"):
        ui.check_duration(big, 90.0)
    ui.check_duration(big, 59.0)


def _write_avi(path, n=30, fps=10, size=(130, 98)):
    """An MPEG-4 Part 2 + MP2 AVI: a container and codecs browsers do not play."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("mp2", rate=16000)
        aus.layout = "mono"
        for i in range(n):
            out.mux(
                vs.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), i * 8, np.uint8), format="rgb24"))
            )
        out.mux(vs.encode())
        pcm = (np.sin(np.arange(16000 * n // fps) / 10) * 10000).astype(np.int16)
        for i in range(0, len(pcm), 1152):
            af = av.AudioFrame.from_ndarray(pcm[None, i : i + 1152], format="s16", layout="mono")
            af.sample_rate, af.pts = 16000, i
            out.mux(aus.encode(af))
        out.mux(aus.encode())


def test_playable_copy_transcodes_what_browsers_cannot_play(tmp_path):
    import av

    from demo.playable import needs_transcode, playable_copy

    assert not needs_transcode(SAMPLE) and playable_copy(SAMPLE, "x", tmp_path) == SAMPLE
    src = tmp_path / "old.avi"
    _write_avi(src)
    assert needs_transcode(src)
    seen = []
    out = playable_copy(src, "abc", tmp_path, seen.append)
    assert out == tmp_path / "abc.play.mp4" and seen[-1] == 1.0
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        assert c.streams.video[0].codec_context.width % 2 == 0 and abs(c.duration / 1e6 - 3.0) < 0.2
    mtime = out.stat().st_mtime_ns
    assert playable_copy(src, "abc", tmp_path) == out and out.stat().st_mtime_ns == mtime  # made once
