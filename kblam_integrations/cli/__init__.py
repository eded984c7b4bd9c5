"""The ``kblam`` command line.

Exit codes: 0 on success, 1 on any user error (bad file, bad value, unknown option,
missing module...) with a one-line message on stderr and never a traceback; 130 on
Ctrl-C. Heavy modules (torch, transformers, spaCy, LangChain) are imported inside the
commands, so ``kblam --help`` is fast. Set ``KBLAM_DEBUG=1`` to see tracebacks of
unexpected errors.

Each command lives with its kind (:mod:`.kb_commands`, :mod:`.model_commands`,
:mod:`.chat`, :mod:`.train_commands`, :mod:`.bench`, :mod:`.demo_command`) and registers
itself on :data:`app` when imported; the import order below is the order of ``kblam --help``.
"""

from __future__ import annotations

from . import kb_commands, model_commands, chat, train_commands, bench, demo_command  # noqa: F401,I001 - registration
from .app import app, main

__all__ = ["app", "main"]
