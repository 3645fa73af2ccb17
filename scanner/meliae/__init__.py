"""meliae: see what holds the memory of a Python process.

meliae.scanner dumps the live heap of this process (one JSON line per
object); the dump format is defined in docs/dump-format.md.
meliae.scanner.stream_to streams such dumps to meliae-monitord
(docs/protocol.md).
"""

__version__ = "0.1.0"
