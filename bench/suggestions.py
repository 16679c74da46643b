"""Suggested replies on ja_dev: does the top suggestion answer the right kind of question, and how alike are they?

    python bench/suggestions.py [--predictions PRED.tsv] [--corpus data/tickets.tsv] [--json]

Candidates are the bundled corpus' answers (core.suggestions, the code the agents' page runs); the tickets are
../shared/datasets/ja_dev/ja_dev.tsv, whose category is used for scoring only, never to pick the answers:
- "no category": every corpus answer is a candidate (what a ticket without a fine category and route gets);
- "predicted category" (with --predictions, `id<TAB>category` per row, e.g. the model's fine output): candidates of
  that category only, as on the ticket page; a row the file does not name falls back to all answers.
Reported per mode: top-1 category hit rate (the top suggestion's category is the row's true one), top-3 hit (any
of the three), top-1 route hit, the mean similarity of the top suggestion, and the time per ticket.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.categories import BUNDLED_CORPUS, corpus_rows  # noqa: E402
from core.routes import RouteMap  # noqa: E402
from core.suggestions import CorpusIndex, rank  # noqa: E402

JA_DEV = ROOT.parent / "shared" / "datasets" / "ja_dev" / "ja_dev.tsv"


def read_tsv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def load_predictions(path: Path) -> dict[str, str]:
    rows = read_tsv(path)
    return {row[0]: row[1].strip() for row in rows if len(row) >= 2 and row[0] != "id" and row[1].strip()}


def measure(index: CorpusIndex, tickets: list[dict[str, str]], predictions: dict[str, str] | None,
            route_map: RouteMap) -> dict[str, float | int | str]:
    top1 = top3 = route_hits = missing = 0
    similarities: list[float] = []
    started = time.perf_counter()
    for ticket in tickets:
        category = (predictions or {}).get(ticket["id"])
        if predictions is not None and category is None:
            missing += 1
        found = rank(ticket["question"], [category] if category else None, index)
        truth = ticket["category"]
        if found:
            top1 += found[0].category == truth
            route_hits += route_map.route_for(found[0].category) == route_map.route_for(truth)
            similarities.append(found[0].similarity)
        top3 += any(s.category == truth for s in found)
    elapsed = time.perf_counter() - started
    n = len(tickets)
    return {
        "mode": "no category" if predictions is None else "predicted category",
        "rows": n,
        "no_prediction": missing,
        "top1_category_hit": top1 / n,
        "top3_category_hit": top3 / n,
        "top1_route_hit": route_hits / n,
        "mean_top1_similarity": sum(similarities) / n,  # a ticket with no suggestion counts as 0
        "ms_per_ticket": 1000 * elapsed / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=Path, help="id<TAB>category per ja_dev row (a model's fine output)")
    parser.add_argument("--corpus", type=Path, default=BUNDLED_CORPUS, help="the answers (seed format)")
    parser.add_argument("--tickets", type=Path, default=JA_DEV, help="scored tickets: id question answer category")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    rows = read_tsv(args.tickets)
    header = rows[0]
    tickets = [dict(zip(header, row, strict=False)) for row in rows[1:] if len(row) >= 4]
    for ticket in tickets:
        ticket["question"] = ticket["question"].replace("\\n", "\n")

    started = time.perf_counter()
    index = CorpusIndex(corpus_rows(args.corpus))
    built = time.perf_counter() - started
    route_map = RouteMap.load()
    results = [measure(index, tickets, None, route_map)]
    if args.predictions is not None:
        results.append(measure(index, tickets, load_predictions(args.predictions), route_map))

    if args.json:
        print(json.dumps({"corpus_rows": len(index.rows), "index_seconds": built, "results": results}, indent=2))
        return
    print(f"suggested replies: {len(tickets)} tickets of {args.tickets.name}, {len(index.rows)} answers of "
          f"{args.corpus.name} (idf built in {built:.1f} s)")
    print(f"{'mode':<20} {'top-1 cat':>9} {'top-3 cat':>9} {'top-1 route':>11} {'mean sim':>8} {'ms/ticket':>9}")
    for result in results:
        print(f"{result['mode']:<20} {result['top1_category_hit']:>9.1%} {result['top3_category_hit']:>9.1%} "
              f"{result['top1_route_hit']:>11.1%} {result['mean_top1_similarity']:>8.3f} "
              f"{result['ms_per_ticket']:>9.1f}")
        if result["no_prediction"]:
            print(f"  ({result['no_prediction']} rows had no prediction: searched all answers)")


if __name__ == "__main__":
    main()
