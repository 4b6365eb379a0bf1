"""The critest benchmark's reading of critest's result files, and its answer without critest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.bench import critest_bench


def _results(path: Path, names: list[str], *durations_ms: list[float]) -> None:
    path.write_text(json.dumps({"operationsNames": names, "numParallel": 4, "datapoints": [
        {"sampleIndex": i, "operationsDurationsNs": [int(ms * 1e6) for ms in taken]}
        for i, taken in enumerate(durations_ms)]}))


def test_medians_per_operation_and_create_with_start(tmp_path: Path) -> None:
    _results(tmp_path / "container_benchmark_data.json", ["CreateContainer", "StartContainer"],
             [100, 10], [300, 30], [200, 50])
    _results(tmp_path / "image_listing_benchmark_data.json", ["ListImages"], [1], [3])
    found = critest_bench.medians(tmp_path)
    assert found == {"CreateContainer": 200, "StartContainer": 30, "ListImages": 2,
                     critest_bench.CREATE_START: 250}
    text = critest_bench.report({"crid": found, "containerd": {"CreateContainer": 50,
                                                               "StatusPod": 1}})
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert lines["CreateContainer"] == ["200.0", "50.0", "4.00"]
    assert lines["ListImages"] == ["2.0", "-", "-"]
    assert lines["StatusPod"] == ["-", "1.0", "-"]


def test_params_name_the_lookalike_busybox() -> None:
    params = critest_bench.params(40, 40, 4, 10, 2)
    assert params["imagePullingBenchmarkImage"] == critest_bench.BUSYBOX
    assert (params["podsNumber"], params["containersNumberParallel"],
            params["imagesNumber"], params["imagesNumberParallel"]) == (40, 4, 10, 2)


def test_without_critest_it_is_skipped(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("CRITEST", raising=False)
    assert critest_bench.main([]) == 0
    assert "skipped" in capsys.readouterr().out
    assert critest_bench.main(["--critest", "/nonexistent/critest"]) == 0
    assert "'/nonexistent/critest' is not one" in capsys.readouterr().out
