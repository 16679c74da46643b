"""The three routes and the category → route map (a small replaceable TSV file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROUTES: tuple[str, ...] = ("Account", "Payment", "Other")
DEFAULT_ROUTE_MAP = Path(__file__).with_name("route_map.tsv")


class RouteMapError(ValueError):
    """The route map file is unusable; the message names the file and line."""


@dataclass(frozen=True)
class RouteMap:
    """Ordered (pattern, route) rules; a category takes the route of the first pattern it contains."""

    rules: tuple[tuple[str, str], ...]

    def route_for(self, category: str) -> str:
        for pattern, route in self.rules:
            if pattern == "*" or pattern in category:
                return route
        raise RouteMapError(f"no rule of the route map matches category {category!r} (add a `*` rule)")

    @classmethod
    def load(cls, path: Path | None = None) -> RouteMap:
        path = path or DEFAULT_ROUTE_MAP
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RouteMapError(f"cannot read route map {path}: {exc.strerror}") from None
        rules = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pattern, sep, route = line.partition("\t")
            route = route.strip()
            if not sep or not pattern:
                raise RouteMapError(f"{path}:{number}: expected PATTERN<TAB>ROUTE")
            if route not in ROUTES:
                raise RouteMapError(f"{path}:{number}: route {route!r} is not one of {', '.join(ROUTES)}")
            rules.append((pattern, route))
        if not rules:
            raise RouteMapError(f"{path}: no rules")
        return cls(tuple(rules))
