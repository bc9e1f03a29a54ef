"""eSpeak NG speech synthesis in-process (ctypes over the library that `espeakng-loader` ships).

Used to give SynthTV episodes and the sample asset a real speech track without a system binary.
The library keeps global state, so calls are serialised with a lock.
"""

from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE_OUT = 16_000  # what the app's ASR consumes; synthesis runs at eSpeak's native rate (22,050 Hz)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_LOCK = threading.Lock()

# One voice per speaker: eSpeak English with a voice variant (pitch and timbre differ audibly).
VOICES = ("en-us+m3", "en-us+f3", "en-us+m1", "en-us+f4", "en+m7", "en+f2")


@dataclass(frozen=True)
class Voice:
    name: str = "en-us+m3"  # eSpeak voice[+variant]
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..100


class _Engine:
    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        cb_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )

        def _collect(wav, n, _events):
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = cb_type(_collect)  # keep a reference: the C side holds only a pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip

    def synth(self, text: str, voice: Voice) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"unknown eSpeak voice {voice.name!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
        self.lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        self._chunks = []
        err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"eSpeak NG synthesis failed (code {err})")
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased), float32 out."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def synthesize(text: str, voice: Voice = Voice(), sample_rate: int = SAMPLE_RATE_OUT) -> np.ndarray:
    """Speak `text`; returns float32 mono in [-1, 1] at `sample_rate`, leading/trailing silence trimmed."""
    with _LOCK:
        eng = _engine()
        pcm = eng.synth(text, voice)
        sr = eng.sample_rate
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    if len(loud):
        pcm = pcm[max(0, loud[0] - sr // 100) : loud[-1] + sr // 100]
    return resample(pcm, sr, sample_rate)
