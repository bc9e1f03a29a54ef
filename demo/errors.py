"""The one error type a user sees: a bad input or an unusable setting, said in one line."""


class InputError(Exception):
    """A problem with something the user gave (a file, an option, a directory). The message is one line
    naming the thing and the problem; the CLI prints it and exits 2, the UI shows it as gr.Error."""
