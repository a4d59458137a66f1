"""A real write error from the kernel: past ``RLIMIT_FSIZE`` a write fails with ``EFBIG``
(``SIGXFSZ`` ignored), as it would with ``ENOSPC``, in a child process of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = """
import errno, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
try:
{body}
except OSError as error:
    sys.exit(0 if error.errno == errno.EFBIG else 3)
sys.exit(4)
"""


def raises_efbig(body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (statements writing more than 2 MiB) under a 2 MiB file-size limit; the
    result's return code is 0 when an ``OSError`` with ``EFBIG`` came out of it, 3 for any
    other ``OSError``, 4 when nothing was raised."""
    script = _SCRIPT.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
