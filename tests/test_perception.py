"""Bundled perception models on real media that installed packages ship, offline:
SSD-MobileNet-v2 objects (skimage photos), PP-OCR screen text (skimage's page of text, rendered
captions), YAMNet sounds (pygame's example sound effects)."""

import importlib.util
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from demo.tracks import frame_concepts


def _frame(image: np.ndarray, size=(640, 360)) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(image[:, :, :3]), size, interpolation=cv2.INTER_AREA)


# --- objects ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    from demo.perception.objects import ObjectDetector

    return ObjectDetector(min_score=0.5).load()


def test_objects_cat_and_cup(detector):
    cat, coffee = _frame(data.chelsea()), _frame(data.coffee())
    dets = detector.detect(np.stack([cat, coffee]))
    assert dets[0][0].label == "cat" and dets[0][0].score > 0.8
    assert dets[1][0].label == "cup" and dets[1][0].score > 0.8
    x1, y1, x2, y2 = dets[0][0].box
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and (x2 - x1) * (y2 - y1) > 0.3  # the cat fills the photo


def test_objects_batched_equals_single(detector):
    frames = np.stack([_frame(data.chelsea()), _frame(data.coffee()), _frame(data.astronaut())])
    batched = detector.detect(frames)
    single = [detector.detect(f[None])[0] for f in frames]
    assert [[d.label for d in f] for f in batched] == [[d.label for d in f] for f in single]
    for fb, fs in zip(batched, single):
        for a, b in zip(fb, fs):
            assert a.score == pytest.approx(b.score, abs=1e-3)
            assert np.allclose(a.box, b.box, atol=1e-3)


def test_object_events_merge_frames_and_keep_boxes(detector):
    from demo.perception.objects import describe_frame, detect_objects

    cat, coffee = _frame(data.chelsea()), _frame(data.coffee())
    events = detect_objects(np.stack([cat, cat, coffee]), times=[0.75, 2.25, 3.75], detector=detector)
    cats = [e for e in events if e.label == "cat"]
    assert len(cats) == 1 and (cats[0].start, cats[0].end) == (0.0, 3.0)
    assert cats[0].extra["counts"] == [1, 1] and len(cats[0].extra["boxes"]) == 2
    assert len(cats[0].extra["boxes"][0][0]) == 5  # x1, y1, x2, y2, score
    assert "cup" in frame_concepts(events, 3, 1.5)[2]
    assert describe_frame(detector.detect(coffee[None])[0]).startswith(("cup", "2 cups"))
    assert detect_objects(np.zeros((0, 360, 640, 3), np.uint8), times=[], detector=detector) == []


# --- on-screen text --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader():
    from demo.perception.screentext import ScreenTextReader

    return ScreenTextReader().load()


def test_ocr_reads_a_page_of_text(reader):
    page = np.stack([data.page()] * 3, axis=-1)  # skimage's scanned page (a tutorial excerpt)
    text = " ".join(line.text for line in reader.read(page)).lower()
    for words in ("region-based segmentation", "markers", "background", "histogram"):
        assert words in text, text


def test_screen_text_skips_unchanged_frames_and_dedupes_lines(reader):
    base = _frame(data.chelsea())

    def caption(text, y=320):
        f = base.copy()
        if text:
            cv2.putText(f, text, (30, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        return f

    frames = np.stack([caption(""), caption("OPEN DAILY 9 TO 5"), caption("OPEN DAILY 9 TO 5")] * 1
                      + [caption("OPEN DAILY 9 TO 5"), caption("Fresh coffee inside", 60), base])  # fmt: skip
    events = reader.run(frames, times=(np.arange(6) + 0.5) * 1.5)
    assert reader.frames_read == 4  # frames 2 and 3 repeat frame 1: not read again
    assert [(e.label, e.start, e.end) for e in events] == [
        ("OPEN DAILY 9 TO 5", 1.5, 6.0),
        ("Fresh coffee inside", 6.0, 7.5),
    ]
    assert events[1].extra["box"][1] < 0.3  # near the top of the frame


# --- sounds ----------------------------------------------------------------------------------------


def _pygame_sound(name: str) -> tuple[np.ndarray, int]:
    from scipy.io import wavfile

    spec = importlib.util.find_spec("pygame")
    if spec is None:
        pytest.skip("pygame (test media) not installed: pip install -r requirements-dev.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / "data" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pygame's wavs carry a non-data chunk scipy reports
        sr, x = wavfile.read(path)
    x = (x.astype(np.float32) - 128) / 128 if x.dtype == np.uint8 else x.astype(np.float32) / 32768
    return (x.mean(axis=1) if x.ndim > 1 else x), sr


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    from demo.perception.sounds import SoundTagger

    return SoundTagger(cache_dir=tmp_path_factory.mktemp("models")).load()


def test_quantisation_constants_read_from_the_model(tagger):
    q = tagger._quant
    assert q["audio_zero_point"] == 144 and q["audio_scale"] == pytest.approx(0.0479, abs=1e-4)
    # the uint8 input spans log(0.001) .. ~5.3: the range of YAMNet's log(mel + 0.001)
    assert (0 - q["audio_zero_point"]) * q["audio_scale"] == pytest.approx(np.log(0.001), abs=0.05)
    assert len(tagger.labels) == 521 and tagger.labels[0] == "Speech"


def test_log_mel_patch_layout():
    from demo.perception.sounds import log_mel_patches

    assert log_mel_patches(np.zeros(100, np.float32)).shape == (1, 96, 64)  # padded to one patch
    assert log_mel_patches(np.zeros(16000 * 3, np.float32)).shape == (5, 96, 64)  # every 0.48 s
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    band = log_mel_patches(tone)[0].mean(axis=0).argmax()
    # HTK mel: 125 Hz = 185.2 mel, 7500 Hz = 2773.4 mel, 64 bands -> 39.8 mel apart; 1 kHz = 1000 mel
    # is the centre of band (1000 - 185.2) / 39.8 - 1 = 19.5
    assert band in (19, 20)


def test_boom_is_an_explosion(tagger):
    audio, sr = _pygame_sound("boom.wav")
    events = tagger.run(audio, sr)
    assert "Explosion" in {e.label for e in events}, events
    assert all(e.kind == "sound" and e.start < 1.2 for e in events)


def test_music_loop_is_one_music_interval(tagger):
    audio, sr = _pygame_sound("house_lo.wav")  # a 7 s electronic music loop
    music = [e for e in tagger.run(audio, sr) if e.label == "Music"]
    assert len(music) == 1 and music[0].score > 0.9
    assert music[0].start < 0.5 and music[0].end > 6.0
