"""C2-Matching's contrastive extractor stages in benchmark.train: warped pairs, one step, export, reload."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.training import load_recipe, train
from benchmark.training.data import StepBatchSampler, TrainCrops, homography_pair, train_table
from builders.manifest import Dataset
from models import create_model, get_spec
from models.weights import load_weights, resolve_weights
from tests.train_data import make_train_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = get_spec("c2_matching").test_kwargs
#: 64x64 crops: a 16x16 feature grid, about 100 matches inside the 10 px border (the recipe's 128 is for 160)
SMALL = {"crop_size": 64, "pairs.window": 64, "batch_size": 2, "init_from": None, "losses.0.min_matches": 16}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_train_dataset(tmp_path_factory.mktemp("c2x") / "ds", n_train=4, size=64)


@pytest.fixture
def official(tmp_path, monkeypatch):
    """Stand-ins of the official net_g and VGG19 files (random weights) in a fresh $REFSR_WEIGHTS."""
    root = tmp_path / "weights"
    (root / "c2_matching").mkdir(parents=True)
    monkeypatch.setenv("REFSR_WEIGHTS", str(root))
    torch.manual_seed(7)
    model = create_model("c2_matching", **TINY)
    for role, name in (("net_g", "c2_matching_restoration_mse.pth"), ("vgg19", "vgg19-dcbb9e9d.pth")):
        torch.save(model.checkpoint_modules()[role].state_dict(), root / "c2_matching" / name)
    return root, model


def test_homography_pair_flow_points_at_the_same_content():
    rng = np.random.default_rng(0)
    img = (0.8 * np.add.outer(2 * np.arange(96.0), np.arange(96.0))).round().astype(np.uint8)[..., None].repeat(3, 2)
    warped, flow = homography_pair(img, (0, 10), 96, rng)
    assert warped.dtype == np.float32 and flow.shape == (96, 96, 2) and flow.dtype == np.float64
    assert not np.allclose(flow[..., 0], np.arange(96)[None, :])  # a real warp
    inside = 0
    for y in range(8, 88, 7):
        for x in range(8, 88, 7):
            fx, fy = flow[y, x]
            if 1 <= fx < 94 and 1 <= fy < 94:  # bilinear look-up of the warped image at the flow
                x0, y0 = int(fx), int(fy)
                ax, ay = fx - x0, fy - y0
                v = ((1 - ay) * ((1 - ax) * warped[y0, x0, 0] + ax * warped[y0, x0 + 1, 0])
                     + ay * ((1 - ax) * warped[y0 + 1, x0, 0] + ax * warped[y0 + 1, x0 + 1, 0]))
                assert abs(v - float(img[y, x, 0])) < 1.5  # a linear ramp: bilinear is exact up to rounding
                inside += 1
    assert inside > 50


def test_pairs_loader_is_keyed_by_seed_and_step(dataset):
    ds = Dataset.open(dataset)
    r = load_recipe("c2_matching.student", overrides=SMALL)
    crops = TrainCrops(ds, train_table(ds), r["protocol"], 4, 64, 64, r["augment"], 1, 2, pairs=r["pairs"])
    (b,) = list(StepBatchSampler(4, 2, 1, 3, 4))
    a, again = crops[b[0]], crops[b[0]]
    assert set(a) == {"hr", "lr", "ref", "query", "flow"} and all(torch.equal(a[k], again[k]) for k in a)
    assert a["query"].shape == a["hr"].shape and not torch.equal(a["query"], a["hr"])  # upsampled LR
    assert not torch.equal(a["ref"], a["hr"])


def test_teacher_stage_trains_the_extractor_and_exports_the_official_file(dataset, tmp_path, official):
    root, stand_in = official
    out = tmp_path / "teacher"
    res = train("c2_matching.teacher", dataset, out, overrides={**SMALL, "iterations": 2}, model_kwargs=TINY,
                device="cpu", progress=False, log_every=1)
    assert res["step"] == 2 and set(res["weights"]["files"]) == {"feature_extraction.pth"}
    assert not (out / "c2_matching_restoration_mse.pth").exists()  # only the trained role is written
    sd = torch.load(out / "feature_extraction.pth", map_location="cpu", weights_only=True)
    model = create_model("c2_matching", **TINY)
    assert set(sd) == set(model.net_extractor.state_dict())  # the official keys, no wrapper
    assert "feature_extraction_image1.model.conv3_1.weight" in sd and "feature_extraction_image2.mean" in sd
    log = (out / "log.csv").read_text().splitlines()
    head = log[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in log[1:]]
    assert [(r["kind"], float(r["contrastive"]) > 0) for r in rows] == [("train", True), ("train", True), ("val", True)]
    assert set(res["validation"]) == {"contrastive", "loss"}  # held-out warped pairs of the test split; no PSNR
    # benchmark.run --models c2_matching --weights OUT: the run's extractor with the official net_g and VGG19
    resolved = resolve_weights("c2_matching", out)
    assert resolved.files["extractor"] == out / "feature_extraction.pth"
    assert resolved.files["net_g"] == root / "c2_matching" / "c2_matching_restoration_mse.pth"
    assert resolved.label.startswith(f"trained:{res['run_id']}@")
    load_weights(model, resolved.files)
    assert all(torch.equal(v, sd[k]) for k, v in model.net_extractor.state_dict().items())
    assert all(torch.equal(v, stand_in.net_g.state_dict()[k]) for k, v in model.net_g.state_dict().items())
    sr = model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64))
    assert sr.shape == (1, 3, 64, 64)


def test_student_distils_from_the_teacher_and_stage3_starts_from_it(dataset, tmp_path, official):
    root, _ = official
    teacher = tmp_path / "teacher"
    train("c2_matching.teacher", dataset, teacher, overrides={**SMALL, "iterations": 1}, model_kwargs=TINY,
          device="cpu", progress=False)
    student = tmp_path / "student"
    over = {**SMALL, "iterations": 1, "losses.1.min_matches": 16, "losses.1.teacher.weights": str(teacher)}
    res = train("c2_matching.student", dataset, student, overrides=over, model_kwargs=TINY, device="cpu",
                progress=False, log_every=1)
    row = dict(zip(*(line.split(",") for line in (student / "log.csv").read_text().splitlines()[:2])))
    assert float(row["distillation"]) > 0 and float(row["contrastive"]) > 0
    assert float(row["loss"]) == pytest.approx(float(row["contrastive"]) + float(row["distillation"]), rel=1e-5)
    a = torch.load(teacher / "feature_extraction.pth", weights_only=True)
    b = torch.load(student / "feature_extraction.pth", weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # a new extractor, not the teacher's
    assert res["weights"]["files"]["feature_extraction.pth"]["role"] == "extractor"
    # stage 3 keeps the student's extractor frozen (no official feature_extraction.pth exists here)
    assert not (root / "c2_matching" / "feature_extraction.pth").exists()
    stage3 = tmp_path / "stage3"
    init = {"model": "c2_matching", "weights": str(student), "roles": ["extractor"]}
    train("c2_matching", dataset, stage3, overrides={"crop_size": 64, "ref_size": 64, "iterations": 1, "batch_size": 1,
                                                      "init_from": init, "validate_every": 0},
          model_kwargs=TINY, device="cpu", progress=False, val_limit=0)
    ckpt = torch.load(stage3 / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ckpt[f"net_extractor.{k}"], v) for k, v in b.items())
    assert json.loads((stage3 / "run.json").read_text())["init_from"]["files"]["extractor"]["path"] == \
        str(student / "feature_extraction.pth")
    # its OUT holds net_g and the extractor it was trained with: benchmark.run --weights OUT scores that pair
    resolved = resolve_weights("c2_matching", stage3)
    assert resolved.files["extractor"] == stage3 / "feature_extraction.pth"
    assert resolved.files["net_g"] == stage3 / "c2_matching_restoration_mse.pth"
    exported = torch.load(stage3 / "feature_extraction.pth", weights_only=True)
    assert all(torch.equal(exported[k], v) for k, v in b.items())


def test_recipe_starts_from_torchvision_vgg16(dataset, tmp_path, official):
    """init_from: a bare torchvision file name found in $REFSR_WEIGHTS; both branches get conv1_1..conv3_1."""
    root, _ = official
    torch.manual_seed(3)
    vgg = {f"features.{i}.{k}": torch.randn(shape if k == "weight" else shape[:1])
           for i, shape in {0: (64, 3, 3, 3), 2: (64, 64, 3, 3), 5: (128, 64, 3, 3), 7: (128, 128, 3, 3),
                            10: (256, 128, 3, 3), 12: (256, 256, 3, 3)}.items() for k in ("weight", "bias")}
    torch.save(vgg, root / "vgg16-397923af.pth")
    out = tmp_path / "init"
    over = {k: v for k, v in SMALL.items() if k != "init_from"}
    train("c2_matching.teacher", dataset, out, overrides={**over, "iterations": 0}, model_kwargs=TINY, device="cpu",
          progress=False)
    sd = torch.load(out / "feature_extraction.pth", weights_only=True)
    for branch in ("feature_extraction_image1", "feature_extraction_image2"):
        assert torch.equal(sd[f"{branch}.model.conv1_1.weight"], vgg["features.0.weight"])
        assert torch.equal(sd[f"{branch}.model.conv3_1.bias"], vgg["features.10.bias"])
