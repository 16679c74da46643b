"""Loaders for the seed TSV (the prototype's format) and the shared English datasets, all mapped to routes.

Every loader returns `Dataset`: examples with their gold route and fine category (the dataset's own label: the
corpus's 19 categories, Banking77's intents, Bitext's categories), plus how many unusable rows it dropped and why.
Malformed input raises `DatasetError` naming the file and line, for the CLI to print without a traceback.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.routes import ROUTES, RouteMap
from core.text import clean

FORMATS = ("seed", "banking77", "bitext")
MAX_CATEGORY_CHARS = 64  # tickets.fine_category's width: a longer label could be predicted but never stored
SEED_HEADER = ("id", "question", "answer", "category")


class DatasetError(ValueError):
    """Input we cannot read; the message says where (file:line) and what is wrong."""


CORPUS = "corpus"  # Example.origin of every loaded row; training.retrain adds its agents' sources


@dataclass(frozen=True)
class Example:
    text: str
    route: str
    category: str | None  # the fine label the category head learns; None: no fine label (that head skips the row)
    source: str  # "file:line", for error reports and debugging
    origin: str = CORPUS  # where the row comes from: train() weighs rows by origin (TrainOptions.sample_weights)


@dataclass
class Dataset:
    examples: list[Example]
    dropped: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def routes(self) -> list[str]:
        return [e.route for e in self.examples]

    @property
    def categories(self) -> list[str | None]:
        return [e.category for e in self.examples]

    def category_labels(self) -> list[str]:
        """The fine labels present, sorted: the category head's outputs, in order."""
        return sorted({e.category for e in self.examples if e.category is not None})

    def route_counts(self) -> dict[str, int]:
        counts = Counter(self.routes)
        return {route: counts.get(route, 0) for route in ROUTES}

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for e in self.examples:
            # The fine label counts only where there is one, so a dataset without any hashes as it always did.
            label = e.route if e.category is None else f"{e.route}\t{e.category}"
            digest.update(f"{label}\t{e.text}\n".encode())
        return digest.hexdigest()[:16]

    def extend(self, other: Dataset) -> None:
        self.examples.extend(other.examples)
        self.dropped.update(other.dropped)

    def deduplicated(self) -> Dataset:
        """Drop exact repeats of the same text (first label wins), counting them as dropped."""
        seen: set[str] = set()
        kept = []
        dropped = Counter(self.dropped)
        for e in self.examples:
            if e.text in seen:
                dropped["duplicate text"] += 1
                continue
            seen.add(e.text)
            kept.append(e)
        return Dataset(kept, dropped)


def _open(path: Path):  # type: ignore[no-untyped-def]
    try:
        return path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None


def _usable(text: str) -> bool:
    """A row whose text cleans to nothing (empty, only a signature or separators) cannot teach anything."""
    return bool(clean(text))


def load_seed(path: Path, route_map: RouteMap | None = None) -> Dataset:
    """`id question answer category [route]`, tab-separated, a literal `\\n` inside a field is a newline.

    The `route` column, when present and filled, is the gold route; otherwise the route map decides.
    """
    route_map = route_map or RouteMap.load()
    dataset = Dataset([])
    with _open(path) as handle:
        try:
            lines = handle.read().split("\n")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    header = tuple(lines[0].lstrip("\ufeff").rstrip("\r").split("\t")) if lines else ()
    if header[:4] != SEED_HEADER or len(header) > 5 or (len(header) == 5 and header[4] != "route"):
        raise DatasetError(f"{path}:1: expected header 'id<TAB>question<TAB>answer<TAB>category[<TAB>route]'")
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in (4, 5):
            raise DatasetError(f"{path}:{number}: expected 4 or 5 tab-separated fields, found {len(fields)}")
        question, category = fields[1].replace("\\n", "\n"), fields[3].strip()
        route = fields[4].strip() if len(fields) == 5 else ""
        if route and route not in ROUTES:
            raise DatasetError(f"{path}:{number}: route {route!r} is not one of {', '.join(ROUTES)}")
        if not category and not route:
            raise DatasetError(f"{path}:{number}: neither a category nor a route")
        if len(category) > MAX_CATEGORY_CHARS:
            raise DatasetError(f"{path}:{number}: category longer than {MAX_CATEGORY_CHARS} characters")
        if not _usable(question):
            dataset.dropped["empty after clean-up"] += 1
            continue
        route = route or route_map.route_for(category)
        dataset.examples.append(Example(question, route, category or None, f"{path.name}:{number}"))
    return dataset


def _mapping(folder: Path) -> dict[str, str]:
    path = folder / "MAPPING.tsv"
    mapping: dict[str, str] = {}
    with _open(path) as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 or not row:
                continue
            if len(row) < 2 or row[1] not in ROUTES:
                raise DatasetError(f"{path}:{number}: expected label<TAB>route with route in {ROUTES}")
            mapping[row[0]] = row[1]
    return mapping


def _load_csv(path: Path, text_column: str, label_column: str) -> Dataset:
    mapping = _mapping(path.parent)
    dataset = Dataset([])
    with _open(path) as handle:
        reader = csv.DictReader(handle)
        try:
            columns = reader.fieldnames or []
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 ({exc.reason})") from None
        for column in (text_column, label_column):
            if column not in columns:
                raise DatasetError(f"{path}:1: missing column {column!r} (found {', '.join(columns)})")
        try:
            for row in reader:
                number = reader.line_num
                text, label = row.get(text_column), row.get(label_column)
                if text is None or label is None or None in row:
                    raise DatasetError(f"{path}:{number}: wrong number of fields")
                if label not in mapping:
                    raise DatasetError(f"{path}:{number}: label {label!r} is not in {path.parent / 'MAPPING.tsv'}")
                if len(label) > MAX_CATEGORY_CHARS:
                    raise DatasetError(f"{path}:{number}: label longer than {MAX_CATEGORY_CHARS} characters")
                if not _usable(text):
                    dataset.dropped["empty after clean-up"] += 1
                    continue
                dataset.examples.append(Example(text, mapping[label], label, f"{path.name}:{number}"))
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}:{reader.line_num}: not UTF-8 ({exc.reason})") from None
    return dataset


def load_banking77(path: Path) -> Dataset:
    """Banking77 `text,category` CSV; routes from MAPPING.tsv beside it."""
    return _load_csv(path, "text", "category")


def load_bitext(path: Path) -> Dataset:
    """Bitext `flags,utterance,category,intent` CSV; routes from MAPPING.tsv (category column) beside it."""
    return _load_csv(path, "utterance", "category")


def load(path: Path, fmt: str = "seed", route_map: RouteMap | None = None) -> Dataset:
    if fmt == "seed":
        return load_seed(path, route_map)
    if fmt == "banking77":
        return load_banking77(path)
    if fmt == "bitext":
        return load_bitext(path)
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def guess_format(path: Path) -> str:
    """Seed TSV unless the file is a CSV whose header names a known dataset's columns."""
    if path.suffix.lower() != ".csv":
        return "seed"
    with _open(path) as handle:
        header = handle.readline()
    if "utterance" in header:
        return "bitext"
    if header.strip().startswith("text"):
        return "banking77"
    raise DatasetError(f"{path}:1: cannot tell the format from the header; pass --format")
