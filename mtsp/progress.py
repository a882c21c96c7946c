"""A dependency-free progress display on stderr.

``Progress(label)`` is a callable taking a fraction in [0, 1] (the ``progress=`` callback of
``mtsp.numeric.solve.solve`` and ``mtsp.validate.simulate.simulate``). On a terminal it redraws one
line with ``\\r`` — a text bar, the percentage and the elapsed time, refreshed by a small ticker
thread so that the clock moves even while a callback is not called; elsewhere (a log file, CI) it
writes a plain line at each quarter and one when done. ``enabled=False`` makes it silent.

    with Progress("simulation") as p:
        simulate(setup, progress=p)
"""
from __future__ import annotations

import sys
import threading
import time

__all__ = ["Progress", "progress_enabled"]

NOTE_INTERVAL = 10.0  # seconds between note lines written to a non-terminal


def progress_enabled(json_mode: bool, stream=None, quiet: bool = False) -> bool:
    """Whether to show progress: never when ``quiet``; else when the stream is a terminal or when
    the output is not ``--json`` (a pipe reading JSON from stdout gets a clean stderr)."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or not json_mode


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:4.1f}s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s"


class Progress:
    """Text progress bar for one stage of work (see the module docstring)."""

    def __init__(self, label: str, *, enabled: bool = True, stream=None, width: int = 28,
                 tick: float = 0.5, tty: bool | None = None):
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.width = int(width)
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.fraction = 0.0
        self.note = ""
        self._last_note_time = None
        self.start = time.perf_counter()
        self.closed = False
        self._lock = threading.Lock()
        self._last_quarter = -1
        self._stop = threading.Event()
        self._thread = None
        if self.enabled:
            if self.tty:
                self._draw()
                if tick and tick > 0:
                    self._thread = threading.Thread(target=self._ticker, args=(float(tick),),
                                                    daemon=True)
                    self._thread.start()
            else:
                self._write(f"{self.label}: started\n")

    # -- public -------------------------------------------------------------------------------
    def __call__(self, fraction: float, note: str | None = None) -> None:
        if not self.enabled or self.closed:
            return
        try:
            f = float(fraction)
        except (TypeError, ValueError):
            return
        f = min(max(f, 0.0), 1.0)
        with self._lock:
            self.fraction = max(self.fraction, f)
            changed = note is not None and note != self.note
            if note is not None:
                self.note = note
        if self.tty:
            self._draw()
        else:
            quarter = int(self.fraction * 4)
            line = f"{self.label}: {int(100 * self.fraction)}% ({_fmt_seconds(self.elapsed).strip()})" \
                + (f" {self.note}" if self.note else "") + "\n"
            if 0 < quarter < 4 and quarter > self._last_quarter:
                self._last_quarter = quarter
                self._write(line)
                self._last_note_time = time.perf_counter()
            elif changed and (self._last_note_time is None
                              or time.perf_counter() - self._last_note_time >= NOTE_INTERVAL):
                # a slow stage's notes (the mp back-end's cost, each right-hand side) reach logs too
                self._write(line)
                self._last_note_time = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def close(self, message: str | None = None) -> float:
        """End the stage: the bar is completed (or ``message`` replaces it). Returns the elapsed
        seconds."""
        elapsed = self.elapsed
        if self.closed:
            return elapsed
        self.closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.enabled:
            done = message or f"done in {_fmt_seconds(elapsed).strip()}"
            if self.tty:
                with self._lock:
                    self.fraction = 1.0 if message is None else self.fraction
                    self.note = ""
                self._draw(final=done)
                self._write("\n")
            else:
                self._write(f"{self.label}: {done}\n")
        return elapsed

    def fail(self) -> None:
        """End the stage after an error: finish the line without claiming completion."""
        if not self.closed:
            self.close(message="stopped")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.fail()
        return False

    # -- internals -----------------------------------------------------------------------------
    def _ticker(self, tick: float) -> None:
        while not self._stop.wait(tick):
            self._draw()

    def _draw(self, final: str | None = None) -> None:
        with self._lock:
            if self.closed and final is None:
                return
            f = self.fraction
            n = int(round(f * self.width))
            bar = "#" * n + "." * (self.width - n)
            tail = final if final is not None else _fmt_seconds(self.elapsed)
            note = f"  {self.note}" if self.note and final is None else ""
            line = f"\r{self.label:<11} [{bar}] {100 * f:3.0f}%  {tail}{note}"
            self._write(line + "\033[K" if self.tty else line)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stderr: progress is never fatal
            self.enabled = False
