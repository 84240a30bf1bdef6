"""The build CLI: options reach the recipe config, the report is printed, errors are one clear line."""
from __future__ import annotations

import pytest
import yaml

from builders import build
from builders.manifest import Dataset
from tests.builders_synth import make_albums


def test_cli_builds_prints_report_and_records_config(tmp_path, capsys):
    albums = make_albums(tmp_path / "albums", n=1)
    out = tmp_path / "ds"
    argv = ["--recipe", "cufed5", "--albums", str(albums), "--out", str(out), "--seed", "1", "--jobs", "1",
            "--levels", "4", "--quiet"]
    assert build.main(argv) == 0
    printed = capsys.readouterr().out
    assert "build report (cufed5)" in printed and "test: 4 samples" in printed and "L4=1" in printed
    spec = Dataset.open(out).spec
    assert spec["config"]["levels"] == {"n": 4, "method": "rank", "thresholds": []} and spec["seed"] == 1
    assert build.main(argv) == 2                                   # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert build.main(argv + ["--overwrite", "--thresholds", "400", "200", "100"]) == 0
    assert Dataset.open(out).spec["config"]["levels"]["method"] == "thresholds"


def test_config_file_and_bad_options(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"sift": {"ratio": 0.7}, "levels": {"n": 3}}))
    args = build.parse_args(["--recipe", "cufed5", "--albums", "a", "--out", "o", "--config", str(cfg),
                             "--levels", "4", "--geometry", "fundamental"])
    assert build.config_dict(args) == {"sift": {"ratio": 0.7, "geometry": "fundamental"}, "levels": {"n": 4}}
    albums = make_albums(tmp_path / "albums", n=1)
    rc = build.main(["--recipe", "cufed5", "--albums", str(albums), "--out", str(tmp_path / "x"),
                     "--min-inliers", "5", "--quiet"])          # a drefsr-only option
    assert rc == 2 and "unknown Config option" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        build.parse_args(["--help"])
    assert e.value.code == 0 and "thresholds" in capsys.readouterr().out
