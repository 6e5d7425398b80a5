"""The Raft view page: plain HTML, CSS and JavaScript that draw a cluster's Raft state.

One page serves two feeds, both server-sent events in the same shape: a live member's
collector (pyetcd) and the simulator's step-through (raft/sim/viewer.py). `PAGE_DIR` is
where the files live, for whichever server mounts them.
"""

from __future__ import annotations

from pathlib import Path

PAGE_DIR = Path(__file__).parent / "page"
PAGE_FILES = {"raftview.css": "text/css", "raftview.js": "text/javascript"}
