"""docs/metrics.md is the table of metric specs written out: it fails here when a spec changed
and the page was not written again (``python3 -m exporter.metrics.docs > docs/metrics.md``)."""

from helpers import ROOT

from exporter.metrics import docs, specs


def test_docs_metrics_md_is_written_from_the_specs():
    assert (ROOT / "docs" / "metrics.md").read_text() == docs.render(), f"stale: run {docs.COMMAND}"
    assert docs.main(["--check"]) == 0


def test_the_page_has_every_metric_in_its_group(monkeypatch):
    page = docs.render()
    for spec in specs.SPECS:
        shown = spec.name if spec.kind == specs.HISTOGRAM else spec.sample
        row = next(line for line in page.splitlines() if line.startswith(f"| `{shown}` |"))
        assert spec.description in row and ", ".join(spec.labels) in row
        assert page.index(f"### {spec.group}") < page.index(row)
    # A changed help or doc makes the page stale.
    monkeypatch.setattr(specs, "SPECS", (*specs.SPECS[:-1],))
    monkeypatch.setattr(docs, "SPECS", specs.SPECS)
    assert docs.main(["--check"]) == 1
