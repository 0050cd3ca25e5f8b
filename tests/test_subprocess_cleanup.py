"""A test process that dies (killed by a signal, a CI timeout) takes the simulators and
exporters it started with it, instead of leaving them running on the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
PARENT = """
import sys, time
from pathlib import Path
from tests.helpers import Process

child = Process([sys.executable, "-c", "import time; time.sleep(120)"], Path(sys.argv[1]))
print(child.popen.pid, flush=True)
time.sleep(120)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_killed_test_process_takes_its_subprocesses_with_it(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "child.log")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        # Killed before the child armed its parent-death signal, it would be missed: wait for
        # the exec that follows the arming.
        wait_for(lambda: not command_line(child).startswith(b"setpriv"), 10, what="the exec")
        assert running(child)
        parent.kill()
    wait_for(lambda: not running(child), timeout=10, what="the orphaned child to end")
