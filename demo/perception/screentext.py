"""On-screen text: PP-OCR (rapidocr's bundled ONNX models) on the sampled frames.

OCR is the costliest stage, so a frame that has not changed anywhere since the last frame read (a
still shot, a slide) reuses that reading. Lines read on consecutive frames (allowing small OCR differences) become one
timed "screen_text" event, searchable and exportable like a subtitle.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from demo.tracks import ConceptEvent, frame_spans, merge_events


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float  # recognition confidence in [0, 1]
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to the frame


def _normalise(text: str) -> str:
    return " ".join(text.split())


class ScreenTextReader:
    """rapidocr's PP-OCRv6 detector + recogniser; loads on first use, offline.

    min_score: lines read with lower confidence are dropped; max_side: the detector's input is
    shrunk so its longer side is at most this (speed; video text is large enough);
    change_threshold: mean absolute grey-level difference (0-255) per 16-px cell of a 160-px-wide
    thumbnail under which every cell must stay for a frame to count as unchanged and not be read; similarity: difflib ratio above which two
    readings on consecutive frames are the same line.
    """

    def __init__(
        self,
        min_score: float = 0.6,
        max_side: int = 960,
        change_threshold: float = 4.0,
        similarity: float = 0.8,
    ):
        self.min_score, self.max_side = min_score, max_side
        self.change_threshold, self.similarity = change_threshold, similarity
        self._engine = None
        self.frames_read = 0  # how many frames went through OCR in the last run (the rest were reused)

    def load(self) -> ScreenTextReader:
        if self._engine is None:
            from rapidocr import RapidOCR

            params = {
                "Global.log_level": "error",
                "Global.use_cls": False,  # text in video is upright; skipping the angle model saves ~10%
                "Det.limit_type": "max",
                "Det.limit_side_len": self.max_side,
            }
            self._engine = RapidOCR(params=params)
        return self

    def read(self, frame: np.ndarray) -> list[TextLine]:
        """One (H, W, 3) uint8 RGB frame -> its text lines, top to bottom."""
        self.load()
        h, w = frame.shape[:2]
        result = self._engine(np.ascontiguousarray(frame[:, :, ::-1]))  # rapidocr takes BGR arrays
        if result.txts is None:
            return []
        lines = []
        for text, score, quad in zip(result.txts, result.scores, result.boxes):
            text = _normalise(text)
            if not text or score < self.min_score:
                continue
            quad = np.asarray(quad, dtype=np.float32)  # (4, 2) pixel corners
            x1, y1 = quad.min(0) / (w, h)
            x2, y2 = quad.max(0) / (w, h)
            lines.append(TextLine(text, float(score), tuple(round(float(v), 4) for v in (x1, y1, x2, y2))))
        return lines

    @staticmethod
    def _thumbnail(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, (160, max(1, round(160 * h / w))), interpolation=cv2.INTER_AREA).astype(
            np.float32
        )

    def _unchanged(self, thumb: np.ndarray, last: np.ndarray) -> bool:
        """No 16 x 16 cell of the thumbnail changed on average by change_threshold or more.

        Local cells, not the whole-frame mean, so a caption appearing on a still shot counts as a
        change; a moving shot is re-read every frame (new text could appear anywhere in it).
        """
        diff = np.abs(thumb - last)
        h, w = diff.shape
        cells = cv2.resize(diff, (max(1, w // 16), max(1, h // 16)), interpolation=cv2.INTER_AREA)
        return float(cells.max()) < self.change_threshold

    def read_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[list[TextLine]]:
        """Text lines per frame, re-reading only frames whose text region changed."""
        out: list[list[TextLine]] = []
        last_thumb, last_lines = None, []
        self.frames_read = 0
        for frame in frames:
            thumb = self._thumbnail(frame)
            if last_thumb is None or not self._unchanged(thumb, last_thumb):
                last_lines, last_thumb = self.read(frame), thumb
                self.frames_read += 1
            out.append(last_lines)
        return out

    def run(
        self, frames: np.ndarray, times: Sequence[float], interval: float | None = None
    ) -> list[ConceptEvent]:
        """Sampled frames -> "screen_text" events: one per line of text and run of frames showing it.

        A line continues an open line of the previous frame when their texts are similar (OCR
        varies); the event keeps the most confident reading as its label. extra = {"box": first box}.
        """
        if len(frames) != len(times):
            raise ValueError(f"{len(frames)} frames but {len(times)} times")
        done: list[ConceptEvent] = []
        open_: list[ConceptEvent] = []  # lines seen on the previous frame
        for (start, end), lines in zip(frame_spans(times, interval), self.read_frames(frames)):
            still_open = []
            for line in lines:
                match = max(
                    open_,
                    key=lambda e: difflib.SequenceMatcher(None, e.label, line.text).ratio(),
                    default=None,
                )
                if match is not None and (
                    difflib.SequenceMatcher(None, match.label, line.text).ratio() >= self.similarity
                ):
                    open_.remove(match)
                    best = line.score > match.score
                    still_open.append(
                        ConceptEvent(
                            "screen_text",
                            match.start,
                            end,
                            line.text if best else match.label,
                            max(line.score, match.score),
                            match.extra,
                        )
                    )
                else:
                    still_open.append(
                        ConceptEvent(
                            "screen_text", start, end, line.text, line.score, {"box": list(line.box)}
                        )
                    )
            done.extend(open_)
            open_ = still_open
        done.extend(open_)
        return merge_events(done)


def read_screen_text(
    frames: np.ndarray,
    times: Sequence[float],
    interval: float | None = None,
    reader: ScreenTextReader | None = None,
) -> list[ConceptEvent]:
    """Convenience wrapper: "screen_text" events for the app's sampled frames."""
    return (reader or ScreenTextReader()).run(frames, times, interval)
