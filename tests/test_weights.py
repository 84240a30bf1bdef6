"""Weight sets: one resolver, one missing-file message, sha256 of every file, 'official' only for the
official hash, user files through --weights, and rows that record all of it."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from models import create_model, get_spec
from models.weights import MissingWeights, recorded_hashes, resolve_weights

TINY = get_spec("ttsr").test_kwargs


def _save_tiny(path, seed):
    torch.manual_seed(seed)
    torch.save(create_model("ttsr", **TINY).state_dict(), path)
    return path


def test_missing_files_are_named_with_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights) as e:
        resolve_weights("ttsr.rec")
    msg = str(e.value)
    assert str(tmp_path / "ttsr" / "TTSR-rec.pt") in msg and "github.com/researchmm/TTSR" in msg and "--weights" in msg
    assert resolve_weights("bicubic").label == "none"
    with pytest.raises(MissingWeights, match="TTSR.pt"):
        create_model("ttsr", pretrained=True)


def test_first_use_records_the_official_hash_and_a_changed_file_is_never_official(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    (tmp_path / "ttsr").mkdir()
    path = _save_tiny(tmp_path / "ttsr" / "TTSR-rec.pt", seed=0)
    first = resolve_weights("ttsr_rec")  # the old name resolves to the tag
    assert first.tag == "ttsr.rec" and first.label == "official"
    rec = recorded_hashes()["ttsr.rec"]["net"]
    assert rec["sha256"] == first.sha256["net"] and rec["file"] == "TTSR-rec.pt" and "researchmm" in rec["source"]
    assert resolve_weights("ttsr.rec").label == "official"  # same file, same label
    _save_tiny(path, seed=1)  # the file at the official place changes: its hash no longer matches
    changed = resolve_weights("ttsr.rec")
    assert changed.label == "custom" and changed.sha256["net"] != first.sha256["net"]
    # a user file is custom unless it is byte-identical to the recorded official one
    mine = _save_tiny(tmp_path / "mine.pth", seed=2)
    assert resolve_weights("ttsr.rec", mine).label == "custom"
    assert recorded_hashes()["ttsr.rec"]["net"]["sha256"] == first.sha256["net"]  # user files never recorded


def test_user_files_load_unchanged_and_wrong_roles_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    path = _save_tiny(tmp_path / "mine.pth", seed=3)
    model = create_model("ttsr", checkpoint_path=path, **TINY)
    assert all(torch.equal(v, torch.load(path, weights_only=True)[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="unknown weight role"):
        resolve_weights("ttsr", {"net_g": path})
    folder = tmp_path / "trained"
    folder.mkdir()
    _save_tiny(folder / "TTSR.pt", seed=3)
    assert resolve_weights("ttsr", folder).files["net"] == folder / "TTSR.pt"  # a folder of official names


def test_rows_carry_tag_label_and_hash_through_the_cli(tmp_path, monkeypatch):
    from benchmark import run
    from tests.harness_data import make_tiny_dataset

    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "w"))
    ds = make_tiny_dataset(tmp_path / "ds", groups=1, levels=1)
    torch.manual_seed(4)
    path = tmp_path / "mine.pth"
    torch.save(create_model("ttsr").state_dict(), path)  # full size: the CLI builds the official config
    code = run.main(["--models", "ttsr.rec", "--datasets", str(ds), "--metrics", "psnr_y", "--weights", str(path),
                     "--out", str(tmp_path / "run"), "--no-profile", "--no-publish", "--limit", "1"])
    assert code == 0
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(df["model"]) == {"ttsr.rec"} and set(df["weights_tag"]) == {"ttsr.rec"}
    assert set(df["weights"]) == {"custom"} and (df["status"] == "ok").all()
    assert {json.loads(s)["net"] for s in df["weights_sha256"]} == {resolve_weights("ttsr.rec", path).sha256["net"]}
