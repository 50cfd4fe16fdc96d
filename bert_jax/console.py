"""What the console shows: bert-jax's own messages, each warning once, no third-party noise.

``setup(verbose=False)`` is called once by the CLI (``bert-jax [--verbose] <command>``):
  * bert-jax logs at INFO (``quiet=True``: ERROR, for commands that print their own
    one-line-per-stage output, such as ``quickstart``);
  * libraries that log routine events (Orbax's restore notes, absl, JAX's backend probing,
    TensorStore) are shown only from ERROR up;
  * a warning with the same text is shown once per process;
  * progress bars (``progress_bar``) and log lines never share a line.
``--verbose`` shows everything, every time, with timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_SET_BY_US: set[str] = set()  # environment variables setup() set (and --verbose may remove)
NOISY = ("absl", "orbax", "jax._src.xla_bridge", "jax._src.distributed", "jax", "tensorstore",
         "etils", "fsspec", "datasets", "huggingface_hub", "urllib3", "matplotlib", "PIL")


class _OncePerMessage(logging.Filter):
    """Drops a WARNING (or worse) whose rendered text was already shown."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


class _ConsoleHandler(logging.StreamHandler):
    """A stderr handler that outlives its stream: when the ``sys.stderr`` it was made with has
    been closed since (a program embedding bert-jax, or a test's capture, replaced it and closed
    it), records go to the process's own stderr instead of "--- Logging error ---" reports."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False) and sys.__stderr__ is not None:
            self.stream = sys.__stderr__  # not setStream(): it flushes the closed stream, which raises
        if "tqdm" in sys.modules and _isatty(self.stream):
            # In a terminal a progress bar holds the last line without a newline: the record would
            # continue it. tqdm clears its bars, the record is written, and they are drawn again.
            from tqdm import tqdm
            with tqdm.external_write_mode(file=self.stream):
                super().emit(record)
            return
        super().emit(record)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed file
        return False


class _WholeLines:
    """A progress bar's stream when stderr is not a terminal (a log file, a pipe): each state the
    bar draws is written as a line of its own. tqdm redraws its line after a carriage return and
    ends it only when it closes, so the first log line written meanwhile continued the bar's line
    ("train: 0%| | 0/100 [00:00<?, ?step/s]INFO ...")."""

    def __init__(self, stream):
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None)  # tqdm draws Unicode blocks only if it says UTF-8

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()  # the redraw's return and its padding over a longer state
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(*args, mininterval: float = 0.1, **kwargs):
    """``tqdm(*args, **kwargs)`` drawing on stderr: in a terminal redrawn at most every
    ``mininterval`` seconds; otherwise (a log file, a pipe) one whole line per state
    (``_WholeLines``), at most one every 30 s, so a long build does not fill the log with bars.
    Every bar of bert-jax and its data pipeline is made here."""
    from tqdm import tqdm
    if _isatty(sys.stderr):
        return tqdm(*args, file=sys.stderr, mininterval=mininterval, **kwargs)
    # maxinterval too: tqdm's monitor thread otherwise redraws every 10 s, between the 30 s lines,
    # with the count of the last one (an iterated bar counts only when it draws)
    every = max(mininterval, 30.0)
    return tqdm(*args, file=_WholeLines(sys.stderr), mininterval=every, maxinterval=every, **kwargs)


def setup(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the root logger for a command-line run (idempotent)."""
    root = logging.getLogger()
    if not getattr(root, "_bert_jax_console", False):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose
                                               else "%(levelname)s %(message)s"))
        if not verbose:
            handler.addFilter(_OncePerMessage())
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        root._bert_jax_console = True
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("bert_jax").setLevel(logging.DEBUG if verbose else (logging.ERROR if quiet else logging.INFO))
    logging.getLogger("data_pipeline").setLevel(logging.DEBUG if verbose else (logging.ERROR if quiet else logging.INFO))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    # These libraries set their loggers' level (and add a handler) when first imported, which may
    # be after this: their own settings keep them at ERROR then (the Hub client's network retries
    # printed each warning twice during an `hf:` input's failed download). A value the user set
    # stays; ours goes again with --verbose.
    for variable in ("HF_HUB_VERBOSITY", "DATASETS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        if not verbose and variable not in os.environ:
            os.environ[variable] = "error"
            _SET_BY_US.add(variable)
        elif verbose and variable in _SET_BY_US:
            del os.environ[variable]
            _SET_BY_US.discard(variable)
    if not verbose:
        warnings.filterwarnings("ignore", module=r"(orbax|jax|absl|tensorstore|flax)(\..*)?")
        try:  # absl's own handler would print Orbax's notes to stderr besides Python logging
            from absl import logging as absl_logging
            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:
            pass
        _quiet_library_coroutines()


def _is_library_coroutine(obj) -> bool:
    code = getattr(obj, "cr_code", None)
    return code is not None and any(f"{os.sep}{lib}{os.sep}" in code.co_filename for lib in ("orbax", "tensorstore"))


def _quiet_library_coroutines() -> None:
    """Drop "Exception ignored in <coroutine ...>" reports of Orbax's read coroutines.

    When one array of a damaged checkpoint fails to read, Orbax abandons the other reads; Python
    reports each abandoned coroutine's error on stderr (~60 lines of TensorStore spec apiece)
    when it is collected, after bert-jax has already named the damaged step and what to do.
    Every other unraisable exception still reaches the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_bert_jax_console", False):
        return

    def hook(unraisable):
        if not _is_library_coroutine(unraisable.object):
            previous(unraisable)

    hook._bert_jax_console = True
    sys.unraisablehook = hook
