"""Gradio entry point (Hugging Face Spaces app_file): builds the UI from demo/ and launches it.

Run `python app.py [--data-dir DIR] [--checkpoint DIR_OR_REPO]` (or set HEROVID_DATA, HEROVID_CHECKPOINT);
on Spaces the same file runs as is, on the bundled defaults.
"""

import argparse
import sys

from demo.errors import InputError
from demo.ui import build_app, launch


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HERO video explorer (Gradio app)")
    p.add_argument(
        "--data-dir", default=None, help="library and cache (default: $HEROVID_DATA or ~/.cache/herovid)"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="HERO checkpoint dir or hub repo id for search and QA (default: $HEROVID_CHECKPOINT, else the shipped one)",
    )
    return p.parse_known_args(argv)[0]  # tolerate launchers' own flags


args = parse_args(sys.argv[1:])
try:
    demo = build_app(args.data_dir, checkpoint=args.checkpoint)
except InputError as e:  # e.g. a checkpoint that cannot be loaded: one line, no traceback
    sys.exit(f"app.py: {e}")

if __name__ == "__main__":
    launch(demo)
