"""Gradio entry point (Hugging Face Spaces app_file): builds the UI from demo/ and launches it.

Run `python app.py` (add HEROVID_DATA=DIR for the library location); on Spaces the same file runs as is.
"""

from demo.ui import build_app, launch

demo = build_app()

if __name__ == "__main__":
    launch(demo)
