"""Work claimed by a local replay's workers as they go, in a folder they share.

The DirectRunner's FnApiRunner hands a stage's keys to its workers once, at
the start, round-robin: the 15 user buckets of a 1M-event day went 8 to one
worker and 7 to the other, which then sat idle for a bucket's time, and
longer when its core ran slower than the other (the two cores of this machine
differ by up to a fifth, measured). So locally every worker is given every
bucket (ReplaySessions), and each claims the next unclaimed piece of work
when it is free: a claim is a file created exclusively (O_EXCL), which one
process wins.

The last buckets are claimed in parts, so the workers finish together. A
bucket's files must hold the whole bucket, so a part's results are saved
here, and the worker that finishes a bucket's last part joins them all and
writes the files: under a lock, the one that finds every part saved and the
bucket not yet joined.

Local folders only (os and fcntl), one per run: the spill folder.
"""
import fcntl
import os
import pickle
from typing import List, Optional


class WorkClaims:
    def __init__(self, folder: str):
        self._folder = folder

    def claim(self, unit: str) -> bool:
        """True for the one caller, of any process, that claims `unit` first."""
        os.makedirs(self._folder, exist_ok=True)
        try:
            os.close(os.open(self._path(f"{unit}.claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def join(self, bucket: int, part: int, parts: int, results: list) -> Optional[list]:
        """Saves `results` of one part of `bucket`; returns every part's
        results, in part order, to the caller that saved the last one, and
        None to the others."""
        saved = self._path(f"{bucket}.{part}.results")
        with open(saved + ".inprogress", "wb") as f:
            pickle.dump(results, f, pickle.HIGHEST_PROTOCOL)
        os.replace(saved + ".inprogress", saved)
        with open(self._path(f"{bucket}.lock"), "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            paths = [self._path(f"{bucket}.{p}.results") for p in range(parts)]
            joined = self._path(f"{bucket}.joined")
            if os.path.exists(joined) or not all(map(os.path.exists, paths)):
                return None
            open(joined, "wb").close()
        every: List = []
        for path in paths:
            if path == saved:
                every.extend(results)
            else:
                with open(path, "rb") as f:
                    every.extend(pickle.load(f))
        return every

    def _path(self, name: str) -> str:
        return os.path.join(self._folder, name)
