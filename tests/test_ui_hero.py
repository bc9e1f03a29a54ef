"""The app with a HERO checkpoint (`build_app(checkpoint=...)`, as `python app.py --checkpoint DIR` or
HEROVID_CHECKPOINT): search, QA and library search go through HERO, and the page says which model answered.
A small untrained HeroForApp checkpoint stands in for a trained one."""

from __future__ import annotations

import html

import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from tests.app_server import launched_app  # noqa: E402
from tests.conftest import SAMPLE  # noqa: E402
from tests.test_engine import _checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def client(data_dir, tmp_path_factory):
    ckpt = _checkpoint(tmp_path_factory.mktemp("ckpt") / "hero-small", 0)
    with launched_app(data_dir, tmp_path_factory.mktemp("examples"), checkpoint=ckpt) as url:
        c = Client(url, verbose=False)
        c.checkpoint = ckpt
        c.predict(handle_file(str(SAMPLE)), None, api_name="/ingest")
        yield c


def test_search_ask_and_library_search_through_hero(client):
    moments, _, payload, _ = client.predict("a rocket on the launch pad", 3, 0, 0, api_name="/search")
    assert payload["method"] == "hero+text" and payload["moments"]
    assert f"Ranked by HERO ({client.checkpoint})" in moments

    answer, _, qa, _ = client.predict("What animal is shown?", "a dog\na cat\na horse", api_name="/ask")
    assert qa["method"] == "hero+text" and len(qa["scores"]) == 3
    assert f"Answered by HERO's QA head ({client.checkpoint})" in html.unescape(answer)

    results, lib = client.predict("a cup of coffee", 5, api_name="/library_search")
    assert lib["method"] == "hero+text" and lib["videos"] and "Ranked by HERO" in results


def test_bad_checkpoint_stops_the_app_with_one_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run(
        [sys.executable, "app.py", "--data-dir", str(tmp_path), "--checkpoint", str(tmp_path / "missing")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"app.py: {tmp_path / 'missing'}: cannot load")
