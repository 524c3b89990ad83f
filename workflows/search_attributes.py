"""Search attributes of pathway workflows: enough to list stuck pathways from Temporal's own UI,
never personal data."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CURRENT_STEPS = SearchAttributeKey.for_keyword_list("ParcoursSteps")
BASIN = SearchAttributeKey.for_keyword("ParcoursBasin")
SLA = SearchAttributeKey.for_keyword("ParcoursSla")
STATUS = SearchAttributeKey.for_keyword("ParcoursStatus")
STUCK_SINCE = SearchAttributeKey.for_datetime("ParcoursStuckSince")
DEFINITION = SearchAttributeKey.for_keyword("ParcoursDefinition")
DEFINITION_VERSION = SearchAttributeKey.for_int("ParcoursDefinitionVersion")

ALL = (CURRENT_STEPS, BASIN, SLA, STATUS, STUCK_SINCE, DEFINITION, DEFINITION_VERSION)

_CLI_TYPES = {
    "KEYWORD_LIST": "KeywordList",
    "KEYWORD": "Keyword",
    "DATETIME": "Datetime",
    "INT": "Int",
}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return flags
