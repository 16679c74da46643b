"""Loaders: seed TSV, Banking77 and Bitext CSVs, and their errors with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.routes import RouteMap, RouteMapError
from tests.support.paths import SHARED
from training.datasets import DatasetError, guess_format, load

HEADER = "id\tquestion\tanswer\tcategory\n"


def write(tmp_path: Path, content: str, name: str = "t.tsv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_seed_rows_routes_newlines_and_dropped_rows(tmp_path):
    path = write(tmp_path, HEADER + "1\tログイン\\nできない\ta\tAccount - Login\n2\t返金\ta\tPayment - Refund\n"
                 "3\t\ta\tBug\n4\t-----\\nhttps://x.example\ta\tSpam\n5\t届かない\ta\tShipping\n")
    data = load(path)
    assert data.texts == ["ログイン\nできない", "返金", "届かない"]
    assert data.routes == ["Account", "Payment", "Other"]
    assert data.dropped["empty after clean-up"] == 2
    assert data.examples[0].source == "t.tsv:2"


def test_route_column_wins_over_the_map(tmp_path):
    path = write(tmp_path, "id\tquestion\tanswer\tcategory\troute\n1\t解約したい\ta\tAccount - Deletion\tPayment\n"
                 "2\tq\ta\tBug\t\n")
    assert load(path).routes == ["Payment", "Other"]


@pytest.mark.parametrize(("content", "where"), [
    (HEADER + "1\tok\ta\tBug\n2\tbroken row\ta\n", ":3: expected 4 or 5 tab-separated fields, found 3"),
    ("question\tcategory\n", ":1: expected header"),
    ("id\tquestion\tanswer\tcategory\troute\n1\tq\ta\tBug\tBilling\n", ":2: route 'Billing' is not one of"),
    (HEADER + "1\tq\ta\t\n", ":2: neither a category nor a route"),
])
def test_seed_errors_name_the_line(tmp_path, content, where):
    with pytest.raises(DatasetError, match=where.replace("(", r"\(")):
        load(write(tmp_path, content))


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "sjis.tsv"
    path.write_bytes((HEADER + "1\tログイン\ta\tBug\n").encode("shift_jis"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load(path)
    with pytest.raises(DatasetError, match="no such file"):
        load(tmp_path / "missing.tsv")
    with pytest.raises(DatasetError, match="unknown format"):
        load(path, "xml")


def test_custom_route_map(tmp_path):
    mapping = write(tmp_path, "# mine\nBilling\tPayment\n*\tOther\n", "map.tsv")
    data = load(write(tmp_path, HEADER + "1\tq\ta\tBilling question\n2\tr\ta\tAccount - Login\n"), "seed",
                RouteMap.load(mapping))
    assert data.routes == ["Payment", "Other"]
    with pytest.raises(RouteMapError, match="map.tsv:1: route 'Nope'"):
        RouteMap.load(write(tmp_path, "x\tNope\n", "map.tsv"))


def test_csv_loaders_with_mapping_and_errors(tmp_path):
    folder = tmp_path / "b77"
    folder.mkdir()
    mapping = "label\troute\tambiguous\tnote\ncard_arrival\tOther\tno\nrequest_refund\tPayment\tno\n"
    write(folder, mapping, "MAPPING.tsv")
    data = load(write(folder, "text,category\nWhere is my card?,card_arrival\n\"Refund, please\",request_refund\n",
                      "train.csv"), "banking77")
    assert data.routes == ["Other", "Payment"] and data.texts[1] == "Refund, please"
    with pytest.raises(DatasetError, match=r"train.csv:3: label 'nope' is not in"):
        load(write(folder, "text,category\nok,card_arrival\nbad,nope\n", "train.csv"), "banking77")
    with pytest.raises(DatasetError, match=r":1: missing column 'utterance'"):
        load(write(folder, "text,category\nok,card_arrival\n", "train.csv"), "bitext")
    assert guess_format(folder / "train.csv") == "banking77"


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared/datasets not beside the checkout")
def test_shared_english_datasets_load_and_map():
    banking = load(SHARED / "datasets/banking77/test.csv", "banking77")
    bitext = load(SHARED / "datasets/bitext_customer_support_20k/TrainingdatasetBitextsample.csv", "bitext")
    assert len(banking) > 3000 and len(bitext) > 20000
    assert set(banking.routes) == set(bitext.routes) == {"Account", "Payment", "Other"}
