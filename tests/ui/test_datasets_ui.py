"""A Parquet dataset (a folder of Hive-partitioned shards) served in a real browser, answered
in the server process and on a Dask LocalCluster (``--cluster local:2``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.test_workspace_ui import card
from tests.unit.test_datasets import write_dataset

pytestmark = pytest.mark.ui

WAIT = 90_000  # ms; the machine may be busy


@pytest.mark.parametrize(
    "options", [(), ("--cluster", "local:2")], ids=["this process", "dask cluster"]
)
def test_panels_serve_a_dataset_folder_shows_its_rows_and_a_histogram(
    page, run_cli, tmp_path: Path, options: tuple[str, ...]
) -> None:
    reference = write_dataset(tmp_path / "preds")
    rows = f"{len(reference):,}"
    page.goto(run_cli("serve", str(tmp_path / "preds"), *options))
    table = card(page, "preds", "table")
    expect(table.locator(".row-count")).to_have_text(f"{rows} of {rows} rows", timeout=WAIT)
    expect(table).to_contain_text("split", timeout=WAIT)  # a partition folder is a column
    table.locator(".panel-selector select").select_option(label="Histogram")
    histogram = card(page, "preds", "histogram")
    expect(histogram.locator(".row-count")).to_have_text(f"{rows} of {rows} rows", timeout=WAIT)
    expect(histogram.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)
    assert page.console_errors == []


def test_a_projection_card_served_on_a_cluster_draws_every_row_there(
    page, run_cli, tmp_path: Path
) -> None:
    reference = write_dataset(tmp_path / "preds")
    rows = f"{len(reference):,}"  # every row has an embedding: each is a point
    page.goto(run_cli("serve", str(tmp_path / "preds"), "--cluster", "local:2"))
    projection = card(page, "preds", "projection")
    expect(projection.locator(".row-count")).to_have_text(f"{rows} of {rows} rows", timeout=WAIT)
    caption = f"PCA of `emb`: {rows} points, drawn on the cluster; PCA fitted on a sample"
    expect(projection).to_contain_text(caption.replace("`", ""), timeout=2 * WAIT)
    expect(projection).to_contain_text("every row placed on the cluster's workers")
    expect(projection.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)
    assert page.console_errors == []
