"""Child Python processes in tests: they import the same fastconv as the test process (installed
or built in place) and run from a neutral folder, never from a checkout whose uncompiled sources
would shadow the installed package (``python -c`` and ``-m`` put the working directory first)."""
import os
import subprocess
import tempfile

import fastconv

FASTCONV_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
NEUTRAL_CWD = tempfile.gettempdir()


def child_env(base=None, **extra) -> dict:
    """``base`` (default: this environment) with this fastconv first on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (FASTCONV_PARENT, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run(cmd, env=None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` from the neutral folder, capturing text output."""
    return subprocess.run(cmd, env=child_env() if env is None else env, cwd=NEUTRAL_CWD,
                          capture_output=True, text=True, timeout=timeout, **kwargs)
