"""The scale-out benchmark's configurations (bench/scaleout.py): how N worker processes are spread over the two
hosts decides what each row measures, so a wrong spread would silently change the experiment."""

from __future__ import annotations

import argparse

import pytest

from bench.scaleout import spread, worker_counts


@pytest.mark.parametrize(("workers", "per_host"), [(1, [1]), (2, [1, 1]), (3, [2, 1]), (4, [2, 2]), (5, [3, 2])])
def test_worker_processes_are_spread_evenly_host_a_first(workers, per_host):
    assert spread(workers) == per_host
    assert sum(spread(workers)) == workers


def test_one_host_takes_every_process_when_there_is_one():
    assert spread(4, hosts=1) == [4]


def test_the_workers_option_takes_a_list_of_positive_counts():
    assert worker_counts("1,2,4") == [1, 2, 4]
    assert worker_counts(" 1, 8 ") == [1, 8]


@pytest.mark.parametrize("text", ["", "0,2", "-1", "one,two", "1;2"])
def test_the_workers_option_refuses_anything_else(text):
    with pytest.raises(argparse.ArgumentTypeError, match="like 1,2,4"):
        worker_counts(text)
