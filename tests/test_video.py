"""Decoding and sampling: frame i covers [i*dt, (i+1)*dt) and is sampled at its centre."""

import numpy as np
import pytest

from demo.errors import InputError
from demo.video import frame_spans, frame_times, iter_frames, load_audio, probe, sample_frames
from tests.conftest import SAMPLE


def test_frame_times_are_interval_centres():
    np.testing.assert_allclose(frame_times(6.0, 1.5), [0.75, 2.25, 3.75, 5.25])
    np.testing.assert_allclose(
        frame_times(6.1, 1.5), [0.75, 2.25, 3.75, 5.25, 6.75]
    )  # partial last interval kept
    np.testing.assert_allclose(frame_times(0.4, 1.5), [0.75])  # shorter than one interval: still one frame
    np.testing.assert_allclose(frame_times(4.0, 2.0), [1.0, 3.0])
    np.testing.assert_allclose(frame_spans(3, 1.5), [[0, 1.5], [1.5, 3.0], [3.0, 4.5]])


def test_probe_sample(sample_script):
    m = probe(SAMPLE)
    assert m.has_audio and (m.width, m.height) == tuple(sample_script["size"])
    assert m.duration == pytest.approx(sample_script["duration"], abs=0.1)
    assert m.fps == pytest.approx(sample_script["fps"])


def test_sampled_frames_show_the_right_shot(sample_script):
    """Frame i is decoded at its interval centre: it must lie inside the shot the script says is on screen."""
    m = probe(SAMPLE)
    frames = sample_frames(SAMPLE, m)
    times = frame_times(m.duration)
    assert frames.shape == (len(times), m.height, m.width, 3) and frames.dtype == np.uint8
    # Shot boundaries are hard cuts between different photographs: consecutive sampled frames in the same
    # shot are near-identical (slow zoom), across a cut they differ strongly.
    shot_of = [
        next(i for i, s in enumerate(sample_script["shots"]) if s["start"] <= t < s["end"]) for t in times
    ]
    diffs = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    same = np.array(shot_of[1:]) == np.array(shot_of[:-1])
    assert diffs[same].max() < diffs[~same].min()


def test_streaming_chunks_cover_all_frames():
    m = probe(SAMPLE)
    chunks = list(iter_frames(SAMPLE, m, chunk=5))
    assert [s for s, _ in chunks] == list(range(0, len(frame_times(m.duration)), 5))
    assert sum(len(f) for _, f in chunks) == len(frame_times(m.duration))
    assert max(len(f) for _, f in chunks) <= 5


def test_audio_is_16k_mono_float(sample_script):
    a = load_audio(SAMPLE, probe(SAMPLE))
    assert a.dtype == np.float32 and a.ndim == 1
    assert len(a) / 16000 == pytest.approx(sample_script["duration"], abs=0.2)
    assert 0.05 < np.abs(a).max() <= 1.0


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="notes.mp4: not a readable video"):
        probe(p)


def _avi_with_b_frames(path, n=100, fps=24):
    """MPEG-4 Part 2 in AVI with B-frames (like opencv's Megamind.avi): no usable frame timestamps for
    decord. Frame i is a flat grey of level 16 + 2*i (inside video range)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 128, 96, "yuv420p"
        s.codec_context.gop_size, s.codec_context.max_b_frames = 12, 2
        for i in range(n):
            img = np.full((96, 128, 3), 16 + 2 * i, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def test_frames_right_where_decord_cannot_seek(tmp_path):
    """decord seeks such files to the wrong frames (frame 50 came back as frame ~20); the sampler decodes
    in order, and every sampled frame is the one at its interval's centre; random access (thumbnails)
    falls back to the same."""
    from demo.thumbs import thumbnails
    from demo.video import read_frame_indices

    path = _avi_with_b_frames(tmp_path / "bframes.avi")
    m = probe(path)
    assert m.n_video_frames == 100 and m.fps == pytest.approx(24)
    frames = sample_frames(path, m)
    idx = (frame_times(m.duration) * m.fps).astype(int)
    np.testing.assert_allclose(frames[:, 48, 64, 0], 16 + 2 * idx, atol=3)
    some = read_frame_indices(path, np.array([90, 10, 50, 10, 150]))  # any order, repeats, past the end
    np.testing.assert_allclose(some[:, 48, 64, 0], [196, 36, 116, 36, 214], atol=3)
    assert all(u and u.startswith("data:image/jpeg") for u in thumbnails(path, [0.5, 4.0], m.fps, 100))


def test_seekable_files_use_decord():
    """Files with frame timestamps (the sample: H.264 in MP4) keep decord's random access."""
    import decord

    from demo.video import _seeks_correctly

    assert _seeks_correctly(decord.VideoReader(str(SAMPLE)))


def test_in_order_reader_moves_forward_with_overlaps(tmp_path):
    """I3D clips read through one pass: neighbouring clips may share frames; going back is an error."""
    from demo.video import FramesInOrder

    path = _avi_with_b_frames(tmp_path / "bframes.avi")
    with FramesInOrder(path) as r:
        a = r.read([8, 9, 10, 11])
        b = r.read([10, 11, 12, 30, 30])
        with pytest.raises(ValueError, match="already passed"):
            r.read([2])
    np.testing.assert_allclose(a[:, 0, 0, 0], [32, 34, 36, 38], atol=3)
    np.testing.assert_allclose(b[:, 0, 0, 0], [36, 38, 40, 76, 76], atol=3)
