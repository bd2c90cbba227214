"""WorkspaceSpec and CardSpec: round trips, table sources, reference checks, schema."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from panels_core.workspace import SCHEMA_VERSION, CardSpec, TableSource, WorkspaceSpec

SAVED = {
    "schema_version": 1,
    "tables": {"preds": "preds:v3", "truth": "data/truth.parquet", "latest": {"store": "runs"}},
    "cards": [
        {
            "kind": "histogram",
            "input": {"table": "preds", "filter": 'score > 0.5 and label in ("cat", "dog")'},
            "config": {"column": "score", "bins": 30},
        },
        {
            "kind": "joined_table",
            "input": {"table": "preds", "join": {"table": "truth", "on": "id"}},
            "title": "Predictions vs truth",
        },
    ],
    "layout": {"columns": 3, "placements": [{"card": 1, "row": 0, "col": 1, "width": 2}]},
    "plugins": {"confusion_matrix": "typed-panels-confusion-matrix"},
}


def test_a_saved_workspace_round_trips_unchanged() -> None:
    spec = WorkspaceSpec.model_validate(SAVED)
    assert spec.to_dict() == SAVED
    assert WorkspaceSpec.model_validate(spec.model_dump()) == spec
    assert WorkspaceSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.cards[0].input.filter is not None  # parsed to the AST


def test_table_sources_are_paths_or_store_references() -> None:
    assert TableSource.model_validate("preds:v3").store == "preds:v3"
    assert TableSource.model_validate("preds:latest").store == "preds:latest"
    assert TableSource.model_validate("data/x.parquet").path == "data/x.parquet"
    assert TableSource.model_validate("./odd:v1").path == "./odd:v1"
    assert TableSource(path="odd:v1").model_dump() == {"path": "odd:v1"}
    with pytest.raises(ValidationError, match="exactly one of `path` or `store`"):
        TableSource.model_validate({"path": "a", "store": "b:v1"})


def test_cards_must_read_listed_tables() -> None:
    bad = {
        "tables": {"preds": "p.parquet"},
        "cards": [{"kind": "table", "input": {"table": "prds"}}],
    }
    with pytest.raises(ValidationError, match=r"card 0 \(table\) reads table `prds`.*`preds`"):
        WorkspaceSpec.model_validate(bad)
    compare = {
        "tables": {"a": "a.parquet"},
        "cards": [{"kind": "t", "input": {"table": "a", "compare_with": {"table": "b"}}}],
    }
    with pytest.raises(ValidationError, match="reads table `b`"):
        WorkspaceSpec.model_validate(compare)


def test_layout_is_checked() -> None:
    base = {"tables": {"a": "a.parquet"}, "cards": [{"kind": "t", "input": {"table": "a"}}]}
    with pytest.raises(
        ValidationError, match="layout places card 3, but the workspace has 1 cards"
    ):
        WorkspaceSpec.model_validate(
            {**base, "layout": {"placements": [{"card": 3, "row": 0, "col": 0}]}}
        )
    with pytest.raises(ValidationError, match="spans past column 2"):
        WorkspaceSpec.model_validate(
            {**base, "layout": {"placements": [{"card": 0, "row": 0, "col": 1, "width": 2}]}}
        )


def test_newer_schema_version_says_to_upgrade() -> None:
    with pytest.raises(ValidationError, match=r"schema_version 2.*upgrade typed-panels"):
        WorkspaceSpec.model_validate({"schema_version": SCHEMA_VERSION + 1})
    assert WorkspaceSpec.model_validate({}).to_dict() == {"schema_version": 1}


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CardSpec.model_validate({"kind": "t", "input": {"table": "a"}, "confg": {}})


def test_json_schema_describes_the_saved_form() -> None:
    schema = WorkspaceSpec.model_json_schema(mode="serialization")
    text = json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "schema_version",
        "tables",
        "cards",
        "layout",
        "plugins",
        "selections",
    }
    assert schema["$defs"]["TableSource"]["anyOf"][0] == {"type": "string"}
    assert '"Query"' in text
