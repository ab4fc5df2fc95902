"""Skip Python's final garbage collections when a QC process exits.

When the interpreter exits, CPython runs full garbage collections over every object
still alive. Once TensorFlow is imported that is more than 400,000 objects and about a
second per run, longer than segqc's whole report; a ``--predictions`` run pays ~0.15 s,
and under pytest-xdist the controller waits for every worker's exit. So segqc freezes
the collector (:func:`gc.freeze`) in an :mod:`atexit` handler: by then nothing will use
that memory again, and the operating system takes it back in one go.

The handler runs only when the interpreter really exits, never at the end of an
in-process run (``pytest.main`` called from a script, pytester), whose objects must
still be collected afterwards. What Python then leaves out is finalising objects that
reference cycles keep alive, which it never promises at exit anyway ("It is not
guaranteed that ``__del__()`` methods are called for objects that still exist when the
interpreter exits", the Python language reference); segqc has written and closed its
files by then.
"""

from __future__ import annotations

import atexit
import gc

__all__ = ["freeze_heap_at_exit"]

_registered = False


def freeze_heap_at_exit() -> None:
    """Register the :func:`gc.freeze` exit handler (once per process).

    Handlers run last-registered-first, so the ones a library registers later (e.g.
    TensorFlow's, when the model loads) still run before it.
    """
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
