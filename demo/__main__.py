"""Command line: the app's functions without a browser. `python -m demo --help`.

Every subcommand prints JSON with --json, shows progress on stderr, and answers a bad input with one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from demo.errors import InputError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="library and cache directory (default: user cache dir)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--checkpoint", default=None, help="HERO checkpoint dir or hub repo id (default: bundled)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="transcribe, sample and encode a video into the library")
    p.add_argument("video")
    p.add_argument("--subtitles", default=None, help=".srt or .vtt file to use instead of Whisper")
    p.add_argument(
        "--whisper-model", default="base", help="bundled 'base', a size name/repo id, or a CT2 dir"
    )
    p.add_argument("--language", default=None, help="force a language code (default: detect)")
    p.add_argument("--vad", action="store_true", help="skip non-speech with VAD before Whisper")
    p.add_argument("--interval", type=float, default=1.5, help="seconds per sampled frame")
    p.add_argument(
        "--tracks",
        default=None,
        help="concept tracks, comma-separated: object,screen_text,sound,action or none "
        "(default: object,sound; +screen_text with a GPU; action only when named)",
    )
    _common(p)

    p = sub.add_parser("export-subtitles", help="write the video's subtitles as SRT or WebVTT")
    p.add_argument("video", help="video file or library id")
    p.add_argument("--format", choices=["srt", "vtt"], default="srt")
    p.add_argument("--out", default=None, help="output file (default: stdout)")
    _common(p)

    p = sub.add_parser("search", help="find the moments of a video (or of the whole library) matching a text")
    p.add_argument("video", nargs="?", help="video file or library id (omit with --library)")
    p.add_argument("query")
    p.add_argument("--library", action="store_true", help="search every ingested video")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--min-len", type=float, default=None, help="shortest moment in seconds")
    p.add_argument("--max-len", type=float, default=None, help="longest moment in seconds")
    _common(p)

    p = sub.add_parser("ask", help="answer a question about a video, with the evidence span")
    p.add_argument("video", help="video file or library id")
    p.add_argument("question")
    p.add_argument("--options", default=None, help='candidate answers "A|B|C|D|E" (default: proposed)')
    _common(p)

    p = sub.add_parser("caption", help="dense captions, one sentence per segment (COOT + MART)")
    p.add_argument("video", help="video file or library id")
    p.add_argument("--segments", default=None, help='"start-end,start-end" in seconds (default: proposed)')
    p.add_argument("--format", choices=["text", "json", "vtt"], default="text", help="vtt: WebVTT chapters")
    _common(p)

    p = sub.add_parser("library", help="list or remove ingested videos")
    p.add_argument("action", choices=["list", "remove"], nargs="?", default="list")
    p.add_argument("video_id", nargs="?")
    _common(p)
    return ap


class _Bar:
    """A tqdm bar on stderr driven by (fraction, stage) callbacks; it appears on the first update, so a
    command that fails before any work prints only its error line."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, fraction: float, stage: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=100, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}", leave=False)
        self.bar.set_description(stage)
        self.bar.n = round(100 * fraction, 1)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, ensure_ascii=False) if args.json else text)


def cmd_ingest(args) -> None:
    from demo.library import Library
    from demo.pipeline import IngestOptions, ingest

    opts = IngestOptions(
        interval=args.interval,
        whisper_model=args.whisper_model,
        language=args.language,
        vad=args.vad,
        device=args.device,
        checkpoint=args.checkpoint,
        tracks=tuple(k.strip() for k in args.tracks.split(",") if k.strip()) if args.tracks else None,
    )
    if args.interval <= 0:
        raise InputError(f"--interval {args.interval}: must be positive")
    lib = Library(args.data_dir)
    bar = _Bar(not args.quiet)
    try:
        rec = ingest(args.video, args.subtitles, lib, opts, progress=bar)
    finally:
        bar.close()
    if rec.meta.duration < rec.frame_interval:
        print(f"{args.video}: shorter than one {rec.frame_interval} s interval; one frame", file=sys.stderr)
    s = rec.summary()
    _emit(
        args,
        s,
        f"{rec.video_id}  {s['duration']:.1f} s  {s['n_frames']} frames  {len(rec.subtitles)} subtitles"
        f"  language={rec.language}  ({s['timings'].get('total', 0):.1f} s)",
    )


def _record(args):
    """The record of args.video, ingesting it first (with a progress bar) if it is a new file."""
    from demo.library import Library
    from demo.pipeline import IngestOptions, find_record

    lib = Library(args.data_dir)
    bar = _Bar(not args.quiet)
    try:
        return lib, find_record(
            lib, args.video, IngestOptions(device=args.device, checkpoint=args.checkpoint), bar
        )
    finally:
        bar.close()


def cmd_search(args) -> None:
    from demo.engine import load_engine
    from demo.search import search_library, search_moments

    if args.top_k < 1:
        raise InputError(f"--top-k {args.top_k}: must be at least 1")
    engine = load_engine(args.checkpoint, args.device)
    if args.library:
        if args.video is not None:
            raise InputError("search --library takes only a query, not a video")
        from demo.library import Library

        moments = search_library(Library(args.data_dir), args.query, args.top_k, engine=engine)
        payload = {"query": args.query, "moments": [m.to_dict() for m in moments]}
        text = "\n".join(
            f"{m.video_id}  {m.start:7.1f}-{m.end:7.1f} s  {m.score:.3f}  {m.text[:60]}" for m in moments
        )
    else:
        if args.video is None:
            raise InputError("search: give a video (or --library)")
        _, rec = _record(args)
        res = search_moments(rec, args.query, args.top_k, args.min_len, args.max_len, engine=engine)
        payload = res.to_dict()
        text = "\n".join(f"{m.start:7.1f}-{m.end:7.1f} s  {m.score:.3f}  {m.text[:70]}" for m in res.moments)
    _emit(args, payload, text or "no moments")


def cmd_ask(args) -> None:
    from demo.engine import load_engine
    from demo.qa import answer_question

    _, rec = _record(args)
    options = args.options.split("|") if args.options else None
    ans = answer_question(rec, args.question, options, engine=load_engine(args.checkpoint, args.device))
    note = " (candidates proposed from the video)" if ans.candidates_source == "proposed" else ""
    _emit(
        args,
        ans.to_dict(),
        f"{ans.answer}  p={ans.scores[ans.answer_index]:.2f}  evidence {ans.evidence[0]:.1f}-{ans.evidence[1]:.1f} s{note}",
    )


def cmd_caption(args) -> None:
    from demo.captions import caption_video, captions_json, chapters_vtt, parse_segments

    segments = parse_segments(args.segments) if args.segments is not None else None  # before any work
    _, rec = _record(args)
    caps = caption_video(rec, segments)
    if args.format == "vtt" and not args.json:
        sys.stdout.write(chapters_vtt(caps))
        return
    args.json = args.json or args.format == "json"
    _emit(args, captions_json(caps), "\n".join(f"{c.start:7.1f}-{c.end:7.1f} s  {c.text}" for c in caps))


def cmd_export_subtitles(args) -> None:
    from demo.library import Library
    from demo.pipeline import find_record
    from demo.subtitles import to_srt, to_vtt

    rec = find_record(Library(args.data_dir), args.video)
    text = to_srt(rec.subtitles) if args.format == "srt" else to_vtt(rec.subtitles)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(f"{args.out}: cannot write ({e.strerror or e})") from None
    else:
        sys.stdout.write(text)


def cmd_library(args) -> None:
    from demo.library import Library

    lib = Library(args.data_dir)
    if args.action == "remove":
        if not args.video_id:
            raise InputError("library remove: give a video id (see: python -m demo library list)")
        if not lib.remove(args.video_id):
            raise InputError(f"{args.video_id}: no such video in {lib.root}")
        _emit(args, {"removed": args.video_id}, f"removed {args.video_id}")
        return
    rows = [
        {
            "video_id": r.video_id,
            "source_name": r.source_name,
            "duration": r.meta.duration,
            "n_frames": r.n_frames,
        }
        for r in lib.records(arrays=False)
    ]
    _emit(
        args,
        {"videos": rows},
        "\n".join(f"{r['video_id']}  {r['duration']:7.1f} s  {r['source_name']}" for r in rows),
    )


COMMANDS = {
    "ingest": cmd_ingest,
    "search": cmd_search,
    "ask": cmd_ask,
    "caption": cmd_caption,
    "export-subtitles": cmd_export_subtitles,
    "library": cmd_library,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
