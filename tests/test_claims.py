"""Work claimed by a local replay's worker processes (transforms/claims.py)."""
import multiprocessing
import os

from transforms.claims import WorkClaims

_FORK = multiprocessing.get_context("fork")


def _claim_all(folder, units, wins):
    claims = WorkClaims(folder)
    wins.put([unit for unit in units if claims.claim(unit)])


def test_each_unit_is_claimed_by_exactly_one_of_racing_processes(tmp_path):
    units = [f"{bucket}.{part}" for bucket in range(200) for part in range(2)]
    wins = _FORK.Queue()
    racers = [_FORK.Process(target=_claim_all, args=(str(tmp_path / "claims"), units, wins)) for _ in range(3)]
    for racer in racers:
        racer.start()
    claimed = [wins.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    assert sorted(unit for won in claimed for unit in won) == sorted(units)


def test_the_last_part_saved_gets_every_parts_results_in_part_order(tmp_path):
    claims = WorkClaims(str(tmp_path))
    assert claims.join(7, 1, 3, ["b"]) is None
    assert claims.join(7, 0, 3, ["a1", "a2"]) is None
    assert claims.join(7, 2, 3, []) == ["a1", "a2", "b"]
    # Another bucket's parts are their own.
    assert claims.join(8, 0, 2, ["x"]) is None
    assert claims.join(8, 1, 2, ["y"]) == ["x", "y"]


def _join(folder, part, results, joined):
    joined.put((part, WorkClaims(folder).join(3, part, 2, results)))


def test_parts_finishing_together_are_joined_once(tmp_path):
    for attempt in range(20):
        folder = str(tmp_path / str(attempt))
        os.makedirs(folder)
        joined = _FORK.Queue()
        parts = [_FORK.Process(target=_join, args=(folder, part, [f"r{part}"] * 1000, joined)) for part in (0, 1)]
        for process in parts:
            process.start()
        outcomes = dict(joined.get(timeout=60) for _ in parts)
        for process in parts:
            process.join(timeout=60)
        assert sorted(outcomes) == [0, 1]
        assert sorted(map(bool, outcomes.values())) == [False, True]
        assert next(filter(None, outcomes.values())) == ["r0"] * 1000 + ["r1"] * 1000
