"""Whisper on the sample's real speech track: the transcript matches the script, times line up."""

import re

import numpy as np
import pytest

from demo.asr import bundled_model_dir, resolve_model
from demo.errors import InputError


def test_transcript_matches_script(sample_record, sample_script):
    import jiwer

    ref = " ".join(line["text"] for line in sample_script["lines"])
    hyp = " ".join(s.text for s in sample_record.subtitles)
    norm = jiwer.Compose(
        [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    )
    wer = jiwer.wer(norm(ref), norm(hyp))
    assert wer < 0.15, f"WER {wer:.3f}\nref: {ref}\nhyp: {hyp}"
    assert sample_record.language == "en"


def test_subtitle_times_follow_the_speech(sample_record, sample_script):
    subs = sample_record.subtitles
    assert all(0 <= s.start < s.end <= sample_record.meta.duration + 0.01 for s in subs)
    assert all(a.start <= b.start for a, b in zip(subs, subs[1:]))
    # each scripted line's midpoint is covered by a subtitle containing one of its distinctive words
    for line in sample_script["lines"]:
        mid = (line["start"] + line["end"]) / 2
        covering = " ".join(s.text.lower() for s in subs if s.start <= mid <= s.end)
        key = max(re.findall(r"[a-z]+", line["text"].lower()), key=len)
        assert key in covering, (line, covering)


def test_bundled_model_is_joined_once(tmp_path):
    d = bundled_model_dir(tmp_path)
    size = (d / "model.bin").stat().st_size
    assert size == 2 * 72608766
    mtime = (d / "model.bin").stat().st_mtime_ns
    assert bundled_model_dir(tmp_path) == d and (d / "model.bin").stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_local_ct2_directory_and_offline_hub_error(tmp_path, monkeypatch):
    d = bundled_model_dir(tmp_path)
    assert resolve_model(str(d), tmp_path) == str(d)
    with pytest.raises(InputError, match="no model.bin"):
        resolve_model(str(tmp_path), tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not available offline"):
        resolve_model("large-v3", tmp_path)


def test_silence_gives_no_subtitles(sample_record, data_dir):
    from demo.asr import load_whisper, transcribe
    from demo.library import Library

    model = load_whisper(cache_dir=str(Library(data_dir).models_dir))
    assert transcribe(np.zeros(16000 * 3, np.float32), model, language="en").subtitles == []


def test_long_segments_split_at_words():
    from types import SimpleNamespace as NS

    from demo.asr import _split

    words = [NS(word=f" w{i}{'.' if i == 5 else ''}", start=i * 1.0, end=i * 1.0 + 0.8) for i in range(14)]
    seg = NS(start=0.0, end=14.0, text="".join(w.word for w in words), words=words)
    subs = _split(seg, duration=13.5)
    assert [s.text.split()[0] for s in subs] == ["w0", "w6"]  # cut after the sentence end past 4 s
    assert subs[0].end == 5.8 and subs[1].start == 6.0 and subs[-1].end == 13.5  # word times, clipped
    assert all(s.end - s.start <= 8.0 for s in subs)


def test_subtitles_end_at_clauses_as_a_viewer_reads_them():
    """Two verse lines in one Whisper segment (Whisper joined the LibriVox sonnet's lines so) become two
    subtitles, cut at the comma; a run-on chunk is cut after its last punctuation before 8 s."""
    from types import SimpleNamespace as NS

    from demo.asr import _split

    def seg(text, step=0.5):
        ws = [NS(word=" " + t, start=i * step, end=i * step + 0.3) for i, t in enumerate(text.split())]
        return NS(start=0.0, end=ws[-1].end, text=text, words=ws)

    lines = _split(
        seg("From fairest creatures we desire increase, That thereby beauty's rose might never die,"), 60
    )
    assert [s.text for s in lines] == [
        "From fairest creatures we desire increase,",
        "That thereby beauty's rose might never die,",
    ]
    assert lines[0].end == 2.8 and lines[1].start == 3.0
    short = _split(seg("Here, at last, we are."), 60)  # clauses under 2.5 s stay together
    assert [s.text for s in short] == ["Here, at last, we are."]
    run_on = _split(seg("one two three; " + " ".join(f"w{i}" for i in range(30))), 60)
    assert run_on[0].text == "one two three;" and all(s.end - s.start <= 8.0 for s in run_on)


def test_a_decoding_loop_keeps_its_first_phrase_and_repeated_speech_stays():
    """Whisper looped on a SynthTV line in CI ("Now the kitten is going upwards." came out as the words
    below); the subtitle keeps the phrase once. A line said twice, and "no, no, no", are speech."""
    from types import SimpleNamespace as NS

    from demo.asr import _split

    def seg(text):
        ws = [
            NS(word=" " + t, start=24 + i * 0.3, end=24 + i * 0.3 + 0.25) for i, t in enumerate(text.split())
        ]
        return NS(start=24.0, end=ws[-1].end, text=text, words=ws)

    looped = "Now the kitten is going up where it's going up where it's going up where it's going up."
    (sub,) = _split(seg(looped), 60)
    assert sub.text == "Now the kitten is going up where it's" and sub.end == 24 + 7 * 0.3 + 0.25
    twice = "Wow, I did not expect that. Wow, I did not expect that."
    assert " ".join(s.text for s in _split(seg(twice), 60)) == twice
    assert _split(seg("No, no, no, not the red one."), 60)[0].text == "No, no, no, not the red one."
    assert _split(seg("the the the the the the cat"), 60)[0].text == "the cat"
