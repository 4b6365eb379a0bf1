"""The runner's summary of a ginkgo JSON report, and its answer without critest."""

from __future__ import annotations

from typing import Any

from e2e.critest import run


def _spec(leaf: str, state: str, message: str = "", node: str = "It") -> dict[str, Any]:
    spec: dict[str, Any] = {"ContainerHierarchyTexts": ["[k8s.io] Image Manager"],
                            "LeafNodeText": leaf, "LeafNodeType": node, "State": state}
    if message:
        spec["Failure"] = {"Message": message,
                           "Location": {"FileName": "image.go", "LineNumber": 74}}
    return spec


def test_summary_counts_specs_and_lists_failures() -> None:
    report = [{"SpecReports": [
        _spec("pulls", "passed"),
        _spec("pulls by digest", "failed", "failed to pull image\nline 2\n" + "more\n" * 20),
        _spec("metrics", "skipped", "CRI Metrics endpoints not supported"),
        _spec("", "failed", "cleanup went wrong", node="AfterSuite"),
    ]}]
    summary = run.summarise(report)
    assert summary.counts == {"passed": 1, "failed": 1, "skipped": 1}
    assert [f.name for f in summary.failures] == [
        "[k8s.io] Image Manager pulls by digest", "[k8s.io] Image Manager AfterSuite"]
    text = run.format_summary(summary)
    assert text.startswith("critest: 1 passed, 1 failed, 1 skipped\n"
                           "  1 skipped: CRI Metrics endpoints not supported\n")
    assert "  at image.go:74\n  | failed to pull image\n  | line 2\n" in text
    assert text.count("  | more") == run.MESSAGE_LINES - 2
    assert "expected here: pinned to the upstream" not in text


def test_the_digest_spec_is_marked_as_failing_on_every_runtime_here() -> None:
    report = [{"SpecReports": [_spec(
        "public image with digest should be pulled and removed [Conformance]", "failed",
        "failed to pull image")]}]
    text = run.format_summary(run.summarise(report))
    assert "\n  expected here: pinned to the upstream image's digest" in text


def test_missing_critest_exits_2_and_says_how_to_get_it(capsys: Any) -> None:
    assert run.main(["--critest", "/nonexistent/critest"]) == 2
    assert "kubernetes-sigs/cri-tools" in capsys.readouterr().err
