"""Subtitle maths and formats: HERO's subtitle -> frame alignment, SRT/WebVTT round trips."""

import pytest

from demo.errors import InputError
from demo.subtitles import (
    Subtitle,
    align_to_frames,
    format_timestamp,
    frame_subtitles,
    parse_subtitles,
    text_in_span,
    to_srt,
    to_vtt,
)

SUBS = [
    Subtitle(0.0, 2.0, "first line"),
    Subtitle(2.5, 4.6, "second, with <i>style</i>"),
    Subtitle(4.6, 4.7, "blink"),
    Subtitle(20.0, 22.0, "after the end"),
]


def test_alignment_overlaps_shares_and_short_subtitles():
    frames = align_to_frames(
        SUBS, n_frames=5, interval=1.5
    )  # frames cover [0,1.5) [1.5,3) [3,4.5) [4.5,6) [6,7.5)
    assert frames[0] == [0, 1]  # 0-2 s overlaps frames 0 and 1
    assert frames[1] == [1, 2, 3]  # 2.5-4.6 s: frame 1 shared with the first subtitle
    assert frames[2] == [3]  # a 0.1 s subtitle still maps to the frame it falls in
    assert frames[3] == []  # starts after the last frame
    inverse = frame_subtitles(SUBS, 5, 1.5)
    assert inverse == [[0], [0, 1], [1], [1, 2], []]  # frame 4 has no subtitle and is kept


def test_alignment_boundaries_are_half_open():
    # A subtitle ending exactly on a frame boundary does not touch the next frame.
    assert align_to_frames([Subtitle(1.5, 3.0, "x")], 4, 1.5) == [[1]]
    assert align_to_frames([Subtitle(3.0, 3.0, "x")], 4, 1.5) == [[2]]


def test_text_in_span():
    assert text_in_span(SUBS, 1.0, 3.0) == "first line second, with <i>style</i>"


@pytest.mark.parametrize(
    "seconds,srt,vtt",
    [
        (0, "00:00:00,000", "00:00:00.000"),
        (3661.0415, "01:01:01,042", "01:01:01.042"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
    ],
)
def test_timestamp_formats(seconds, srt, vtt):
    assert format_timestamp(seconds) == srt
    assert format_timestamp(seconds, ".") == vtt


def test_srt_exact_format_and_round_trip():
    subs = [Subtitle(0.5, 2.25, "Hello there."), Subtitle(3661.001, 3662.5, "Two\nlines")]
    text = to_srt(subs)
    assert text.startswith(
        "1\n00:00:00,500 --> 00:00:02,250\nHello there.\n\n2\n01:01:01,001 --> 01:01:02,500\n"
    )
    back = parse_subtitles(text)
    assert [(s.start, s.end) for s in back] == [(0.5, 2.25), (3661.001, 3662.5)]
    assert back[1].text == "Two lines"  # multi-line cues join with a space


def test_vtt_exact_format_and_round_trip():
    subs = [Subtitle(0.0, 1.5, "One"), Subtitle(75.25, 80.0, "Two")]
    text = to_vtt(subs)
    assert text == "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nOne\n\n00:01:15.250 --> 00:01:20.000\nTwo\n"
    assert parse_subtitles(text) == subs
    assert to_vtt(subs, kind="chapters").startswith("WEBVTT - chapters\n\n")


def test_vtt_reader_tolerates_real_world_files():
    text = (
        "\ufeffWEBVTT\r\n\r\nNOTE a comment\r\n\r\nintro\r\n00:01.000 --> 00:02.500 align:start\r\n"
        "<v Roger>Hi <b>there</b>\r\n\r\n00:00:03.000 --> 00:00:04.000\r\nBye\r\n"
    )
    subs = parse_subtitles(text)
    assert subs == [Subtitle(1.0, 2.5, "Hi there"), Subtitle(3.0, 4.0, "Bye")]


@pytest.mark.parametrize(
    "bad",
    [
        "just some text\nwith no cues",
        "1\n00:00:01,000 --> banana\nx\n",
        "1\n00:00:05,000 --> 00:00:01,000\nbackwards\n",
        "",
    ],
)
def test_unparseable_subtitles_raise_one_clear_error(bad):
    with pytest.raises(InputError) as e:
        parse_subtitles(bad, "bad.srt")
    assert str(e.value).startswith("bad.srt:") and "\n" not in str(e.value)


def test_held_lines_run_on_to_the_next_line_within_the_limit():
    from demo.subtitles import held

    subs = [
        Subtitle(0.0, 2.0, "a"),
        Subtitle(2.5, 4.0, "b"),
        Subtitle(9.0, 10.0, "c"),
        Subtitle(10.0, 12.0, "d"),
    ]
    assert [(s.start, s.end) for s in held(subs, 3.0)] == [(0.0, 2.5), (2.5, 7.0), (9.0, 10.0), (10.0, 15.0)]
    assert held(subs, 0.0) == subs and held([], 3.0) == []
    assert [s.text for s in held(subs, 3.0)] == ["a", "b", "c", "d"]
