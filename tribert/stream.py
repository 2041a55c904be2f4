"""Lines of a file descriptor, in chunks that never wait for input that is not there yet.

``tribert run`` batches the lines it reads, yet in an interactive pipe (one line
in, wait for its answer) a chunk that waited to fill would never be answered. So
a chunk takes the lines already readable (``select`` with no timeout) and stops
at the first one that is not. Lines are bytes, decoded by the caller, so a line
that is not UTF-8 is one line's error rather than the end of the stream; a line
over :data:`MAX_LINE_BYTES` is skipped unread (its bytes are dropped as they
arrive, never held) and stands as :data:`TOO_LONG`.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

__all__ = ["MAX_LINE_BYTES", "TOO_LONG", "EXIT_STREAM", "read_chunks", "discard_stdout"]

#: The longest line read (16 MiB, some four million tokens): enough for any input a BERT takes whole.
MAX_LINE_BYTES = 1 << 24
#: Stands in a chunk for a line over MAX_LINE_BYTES.
TOO_LONG = None
_EOF, _NOT_READY = object(), object()
#: The exit status when stdout was closed before everything was written (docs/cli.md).
EXIT_STREAM = 3


class _LineReader:
    """Splits the bytes of ``fd`` into lines without the newline; holds at most one line's bytes."""

    def __init__(self, fd: int, max_bytes: int):
        self.fd, self.max_bytes = fd, max_bytes
        self.pending = bytearray()
        self.searched = 0  # pending[:searched] holds no newline: each byte is scanned once
        self.eof = False
        self.dropping = False  # inside a line over max_bytes: its bytes are discarded up to its newline

    def _ready(self) -> bool:
        try:
            return bool(select.select([self.fd], [], [], 0)[0])
        except (OSError, ValueError):  # a descriptor select cannot poll: reading may block, as a plain read does
            return True

    def next_line(self, block: bool) -> bytes | None | object:
        """The next line, :data:`TOO_LONG`, ``_EOF``, or (``block=False``) ``_NOT_READY``."""
        while True:
            cut = self.pending.find(b"\n", self.searched)
            if cut >= 0 or (self.eof and (self.pending or self.dropping)):
                end = cut if cut >= 0 else len(self.pending)
                line = bytes(self.pending[:end])
                del self.pending[: end + 1]
                self.searched = 0
                if self.dropping:
                    self.dropping = False
                    return TOO_LONG
                return line
            if self.eof:
                return _EOF
            self.searched = len(self.pending)
            if len(self.pending) > self.max_bytes:
                self.dropping = True
                self.pending.clear()
                self.searched = 0
            if not block and not self._ready():
                return _NOT_READY
            data = os.read(self.fd, 1 << 16)
            self.eof = not data
            self.pending += data


def read_chunks(fd: int, size: int, max_bytes: int = MAX_LINE_BYTES) -> Iterator[list[bytes | None]]:
    """Lines of file descriptor ``fd`` in chunks of 1 to ``size``; a chunk holds only the lines ready now."""
    reader = _LineReader(fd, max_bytes)
    while True:
        first = reader.next_line(block=True)
        if first is _EOF:
            return
        chunk = [first]
        while len(chunk) < size:
            line = reader.next_line(block=False)
            if line is _EOF or line is _NOT_READY:
                break
            chunk.append(line)
        yield chunk


def discard_stdout(stdout) -> None:
    """Point ``stdout``'s descriptor at /dev/null, so the interpreter's last flush cannot raise BrokenPipeError again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no descriptor (a redirected sys.stdout): nothing is flushed at exit
        pass
