"""Search attributes of pathway workflows: enough to list stuck pathways from Temporal's own UI,
never personal data."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CURRENT_STEPS = SearchAttributeKey.for_keyword_list("ParcoursSteps")
BASIN = SearchAttributeKey.for_keyword("ParcoursBasin")
SLA = SearchAttributeKey.for_keyword("ParcoursSla")
STATUS = SearchAttributeKey.for_keyword("ParcoursStatus")
STUCK_SINCE = SearchAttributeKey.for_datetime("ParcoursStuckSince")
DEFINITION = SearchAttributeKey.for_keyword("ParcoursDefinition")
DEFINITION_VERSION = SearchAttributeKey.for_int("ParcoursDefinitionVersion")

PATCHES = SearchAttributeKey.for_keyword_list("ParcoursPatches")
INCIDENT = SearchAttributeKey.for_keyword("ParcoursIncident")
"""Set while something keeps the run from going on by itself (today `commit`: the read model
refuses its writes and they are retried durably); unset once it recovers."""

ALL = (CURRENT_STEPS, BASIN, SLA, STATUS, STUCK_SINCE, DEFINITION, DEFINITION_VERSION)
"""Refreshed at every commit."""
REGISTERED = (*ALL, PATCHES, INCIDENT)
"""Every attribute the workflow sets: `ParcoursPatches` when a run takes a patch, `ParcoursIncident`
while it has an incident."""


def at_start(basin_id: str, definition_id: str, version: int | None) -> TypedSearchAttributes:
    """What a pathway's workflow carries from its start, before its first commit refreshes `ALL`."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(BASIN, basin_id),
            SearchAttributePair(DEFINITION, definition_id),
            SearchAttributePair(DEFINITION_VERSION, version or 0),
            SearchAttributePair(STATUS, "active"),
        ]
    )


_CLI_TYPES = {
    "KEYWORD_LIST": "KeywordList",
    "KEYWORD": "Keyword",
    "DATETIME": "Datetime",
    "INT": "Int",
}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags = []
    for key in REGISTERED:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return flags


async def ensure_registered(client: Client, namespace: str) -> list[str]:
    """Register missing search attributes on a cluster (idempotent); returns the names added."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in REGISTERED
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
