"""The speech track of a SynthTV episode: each subtitle spoken by its speaker's eSpeak NG voice at its start.

A line's slot [start, end] comes from `script.est_duration` (annotations never depend on the synthesiser);
when the synthesised speech is longer than its slot, the line is re-spoken faster until it fits.
"""

from __future__ import annotations

import numpy as np

from synthtv.tts import SAMPLE_RATE_OUT, Voice, synthesize


def speak_line(text: str, voice: Voice, max_seconds: float, sample_rate: int = SAMPLE_RATE_OUT) -> np.ndarray:
    """The line at `voice`, sped up (at most 3 times, +15 % each) until it lasts <= max_seconds."""
    pcm = synthesize(text, voice, sample_rate)
    for _ in range(3):
        if len(pcm) <= max_seconds * sample_rate:
            break
        voice = Voice(voice.name, int(voice.rate * 1.15), voice.pitch)
        pcm = synthesize(text, voice, sample_rate)
    return pcm[: int(max_seconds * sample_rate)]


def speech_track(record: dict, sample_rate: int = SAMPLE_RATE_OUT) -> np.ndarray:
    """float32 mono covering the episode's duration, peak-normalised to 0.9."""
    voices = {s["name"]: Voice(s["voice"], s["rate"], s["pitch"]) for s in record["speakers"]}
    out = np.zeros(int(round(record["duration"] * sample_rate)), np.float32)
    for sub in record["subtitles"]:
        pcm = speak_line(sub["text"], voices[sub["speaker"]], sub["end"] - sub["start"], sample_rate)
        i = int(round(sub["start"] * sample_rate))
        n = min(len(pcm), len(out) - i)
        out[i : i + n] += pcm[:n]
    peak = float(np.abs(out).max()) if len(out) else 0.0
    return out * (0.9 / peak) if peak > 0 else out
