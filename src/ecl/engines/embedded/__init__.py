"""The embedded engine: durable workflows in process, journal in the ECL database."""

from ecl.engines.embedded.context import EmbeddedDurableContext, JournalEntry
from ecl.engines.embedded.engine import EmbeddedEngine, EmbeddedOptions, Orchestrates, OwnerWait
from ecl.engines.embedded.gate import StartGate
from ecl.engines.embedded.recorder import Listener, WriterRecorder
from ecl.engines.embedded.writer import DatabaseWriter, LeaseLost

__all__ = [
    "DatabaseWriter",
    "EmbeddedDurableContext",
    "EmbeddedEngine",
    "EmbeddedOptions",
    "JournalEntry",
    "LeaseLost",
    "Listener",
    "Orchestrates",
    "OwnerWait",
    "StartGate",
    "WriterRecorder",
]
