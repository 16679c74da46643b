"""Fine categories and suggested replies as the agents' pages and API see them: core.categories and
core.suggestions over this process' settings (RETRAIN_CORPUS, ROUTE_MAP_FILE)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sqlalchemy.orm import Session

from api.services import current_runtime
from core import suggestions
from core.categories import Catalog, catalog
from core.orm import Ticket
from core.routes import RouteMap, RouteMapError

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _route_map(path: Path | None) -> RouteMap:
    """ROUTE_MAP_FILE, read once per process. The map is the trainer's input: one it cannot read fails the next
    retrain loudly; here, where it only groups categories, the default map stands in."""
    try:
        return RouteMap.load(path)
    except RouteMapError as exc:
        log.warning("%s; grouping categories by the default route map", exc)
        return RouteMap.load()


def known(session: Session) -> Catalog:
    """The categories an agent may choose, with their routes."""
    settings = current_runtime().settings
    return catalog(session, settings.retrain.corpus, _route_map(settings.route_map_file))


def suggested(session: Session, ticket: Ticket) -> list[suggestions.Suggestion]:
    settings = current_runtime().settings
    return suggestions.for_ticket(session, ticket, settings.retrain.corpus, _route_map(settings.route_map_file))
