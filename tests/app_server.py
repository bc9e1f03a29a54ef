"""The app launched on 127.0.0.1 at a free port for the UI tests (one per test module)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched_app(data_dir: Path, examples_dir: Path, **build_kwargs) -> Iterator[str]:
    """Yield the URL of the app over the library in data_dir (build_kwargs: build_app's, e.g. checkpoint);
    closed afterwards."""
    import os

    from demo.ui import build_app, launch

    old = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(examples_dir)  # not the repo's .gradio/
    demo = build_app(data_dir, **build_kwargs)
    _, url, _ = launch(
        demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield url
    finally:
        demo.close()
        if old is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = old
