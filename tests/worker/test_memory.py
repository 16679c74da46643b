"""worker/memory.py: the pool parent gives back the library pages only its start-up touched, and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.memory import clean_library_mappings

ROOT = Path(__file__).resolve().parents[2]

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 1234                       /usr/lib/libbig.so
Size:               1024 kB
Rss:                1024 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
7f0000100000-7f0000300000 r-xp 00100000 08:01 1234                       /usr/lib/libbig.so
Size:               2048 kB
Anonymous:             0 kB
7f0000300000-7f0000301000 r--p 00300000 08:01 1234                       /usr/lib/libbig.so
Size:                  4 kB
Anonymous:             4 kB
7f0000301000-7f0000302000 rw-p 00301000 08:01 1234                       /usr/lib/libbig.so
Size:                  4 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r--s 00000000 00:05 77                         /dev/shm/segment
Size:               1024 kB
Anonymous:             0 kB
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
Size:               1024 kB
Anonymous:          1024 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Size:                  8 kB
Anonymous:             0 kB
"""


def test_only_private_read_only_file_mappings_that_were_never_written_are_chosen() -> None:
    assert clean_library_mappings(SMAPS) == [
        (0x7F0000000000, 0x7F0000100000),  # read-only data
        (0x7F0000100000, 0x7F0000300000),  # code
        # not: relocations made read-only after they were written (Anonymous), the writable data, a shared
        # mapping, the heap, the vDSO
    ]


PROBE = """
import json, re
from pathlib import Path
import numpy as np

from worker.memory import drop_clean_library_pages

def file_pages_kb():  # resident and not anonymous: the file pages this process maps (others' use aside)
    text = Path("/proc/self/smaps_rollup").read_text()
    field = lambda name: int(re.search(rf"^{name}:\\s+(\\d+)", text, re.M).group(1))
    return field("Rss") - field("Anonymous")

matrix = np.arange(1, 10001, dtype=np.float64).reshape(100, 100)
before_result = float(np.linalg.norm(matrix @ matrix.T))
kept = bytearray(b"written before") * 1000
before = file_pages_kb()
advised = drop_clean_library_pages()
after = file_pages_kb()
print(json.dumps({"before": before, "after": after, "advised": advised,
                  "same_result": float(np.linalg.norm(matrix @ matrix.T)) == before_result,
                  "kept": bytes(kept) == b"written before" * 1000}))
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux's /proc/PID/smaps_rollup only")
def test_a_process_that_drops_its_clean_library_pages_holds_fewer_and_computes_the_same() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["advised"] > 10 << 20  # numpy's and Python's libraries at least
    assert figures["after"] < figures["before"] - 4096  # kB of file pages no longer mapped by the process
    assert figures["same_result"] and figures["kept"]
