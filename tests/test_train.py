"""benchmark.train: DDP equivalence, kill-and-resume, official-format export, recipes, loader determinism."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.training import RecipeError, list_recipes, load_recipe, train
from benchmark.training.data import StepBatchSampler, TrainCrops, train_table
from builders.manifest import Dataset
from models import create_model, get_spec
from models.weights import load_weights, resolve_weights
from tests.train_data import make_train_dataset

ROOT = Path(__file__).resolve().parent.parent
MODEL = "masa.rec"
TINY = get_spec(MODEL).test_kwargs
FAST = {"crop_size": 64, "ref_size": 64, "augment.geometric_from_epoch": 0, "validate_every": 0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_train_dataset(tmp_path_factory.mktemp("train") / "ds", n_train=8, size=64)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _cli(ds: Path, out: Path, steps: int, batch: int, extra=()) -> list[str]:
    sets = [f"{k}={json.dumps(v)}" for k, v in {**FAST, "checkpoint_every": 2}.items()]
    return ["-m", "benchmark.train", "--model", MODEL, "--dataset", str(ds), "--out", str(out), "--steps",
            str(steps), "--batch-size", str(batch), "--model-kwargs", json.dumps(TINY), "--device", "cpu",
            "--quiet", "--log-every", "1", "--val-limit", "1", "--set", *sets, *extra]


def _train_here(ds: Path, out: Path, steps: int, batch: int) -> dict:
    """The same run as :func:`_cli`, in this process (one thread, like the subprocesses)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(MODEL, ds, out, overrides={**FAST, "checkpoint_every": 2, "iterations": steps, "batch_size": batch},
                     model_kwargs=TINY, device="cpu", progress=False, log_every=1, val_limit=1)
    finally:
        torch.set_num_threads(threads)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "masa_rec.pth", map_location="cpu", weights_only=True)


def test_recipes_load_and_cite_sources():
    names = list_recipes()
    assert {"masa.rec", "ttsr.rec"} <= set(names)
    for name in names:
        r = load_recipe(name)
        assert r["model"] == name or name.startswith(r["model"] + ".")  # a stage's recipe: c2_matching.teacher
        assert r["source"]["code"] and r["source"]["paper"] and r.get("gpu_hours")
    with pytest.raises(RecipeError, match="unknown field"):
        load_recipe("masa.rec", overrides={"batchsize": 3})


def test_loader_is_a_function_of_seed_and_step(dataset):
    ds = Dataset.open(dataset)
    table = train_table(ds)
    r = load_recipe(MODEL, overrides=FAST)
    crops = TrainCrops(ds, table, r["protocol"], 4, 64, 64, r["augment"], seed=3, steps_per_epoch=4)
    one = list(StepBatchSampler(len(table), 4, 3, 0, 3))
    two = [b0 + b1 for b0, b1 in zip(StepBatchSampler(len(table), 4, 3, 0, 3, 0, 2),
                                     StepBatchSampler(len(table), 4, 3, 0, 3, 1, 2))]
    assert one == two  # two processes with half the batch see the same global batch
    late = list(StepBatchSampler(len(table), 4, 3, 2, 3))  # resuming at step 2
    assert late == one[2:]
    a, b = crops[one[2][1]], crops[late[0][1]]
    assert all(torch.equal(a[k], b[k]) for k in ("hr", "lr", "ref"))
    assert a["hr"].shape == (3, 64, 64) and a["lr"].shape == (3, 16, 16)


def test_export_is_the_official_format_and_the_harness_loads_it(dataset, tmp_path):
    out = tmp_path / "run"
    res = train(MODEL, dataset, out, overrides={**FAST, "iterations": 3, "batch_size": 2}, model_kwargs=TINY,
                progress=False, val_limit=1)
    assert res["step"] == 3 and not res["resumed"]
    sd = _weights(out)
    model = create_model(MODEL, **TINY)
    assert set(sd) == set(model.state_dict())  # the official keys, no wrapper
    resolved = resolve_weights(MODEL, out)  # what benchmark.run --weights OUT does
    assert resolved.label == f"trained:{res['run_id']}@{resolved.sha256['net'][:12]}" and resolved.files["net"] == out / "masa_rec.pth"
    load_weights(model, resolved.files)
    info = json.loads((out / "weights.json").read_text())
    assert info["run_id"] == res["run_id"] and info["files"]["masa_rec.pth"]["sha256"] == resolved.sha256["net"]
    assert "not official" in info["label"]
    assert (out / "log.csv").is_file() and (out / "curves.png").is_file()
    assert np.isfinite(res["validation"]["psnr_y"])
    other = tmp_path / "copy" / "masa_rec.pth"  # the same bytes without the run's record: plain custom
    other.parent.mkdir()
    other.write_bytes((out / "masa_rec.pth").read_bytes())
    assert resolve_weights(MODEL, other).label == "custom"
    again = train(MODEL, dataset, out, overrides={**FAST, "iterations": 3, "batch_size": 2}, model_kwargs=TINY,
                  progress=False, val_limit=1)  # the same command again: nothing left to do
    assert again["resumed"] and again["step"] == 3
    with pytest.raises(RuntimeError, match="other settings"):
        train(MODEL, dataset, out, overrides={**FAST, "iterations": 3, "batch_size": 4}, model_kwargs=TINY,
              progress=False)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(dataset, tmp_path):
    """5 steps of global batch 4: one process vs two gloo processes with 2 crops each."""
    one, two = tmp_path / "one", tmp_path / "two"
    _train_here(dataset, one, 5, 4)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "-m", *_cli(dataset, two, 5, 4)[1:]], check=True, env=_env(), cwd=ROOT, timeout=120)
    a, b = _weights(one), _weights(two)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    init = create_model(MODEL, **TINY).state_dict()
    moved = max(float((a[k].double() - init[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert moved > 1e-4  # the runs did train
    assert worst <= 1e-5, worst
    assert json.loads((two / "run.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_kill_and_resume_reaches_the_same_parameters(dataset, tmp_path):
    steps = 10
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "killed"
    _train_here(dataset, ref_out, steps, 2)
    proc = subprocess.Popen([sys.executable, *_cli(dataset, out, steps, 2)], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "log.csv"
    deadline = time.time() + 90
    killed_at = None
    while time.time() < deadline and proc.poll() is None:  # kill between checkpoints (every 2 steps), after step 5
        if log.is_file():
            rows = log.read_text().strip().splitlines()[1:]
            if rows and int(rows[-1].split(",")[0]) >= 5:
                proc.send_signal(signal.SIGKILL)
                killed_at = int(rows[-1].split(",")[0])
                break
        time.sleep(0.01)
    proc.wait(timeout=30)
    if killed_at is None:
        pytest.skip("the run finished before it could be killed (machine too fast for the poll)")
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "masa_rec.pth").exists()  # killed before the end: no final weights yet
    assert (out / "checkpoints" / "last.pt").is_file()
    subprocess.run([sys.executable, *_cli(dataset, out, steps, 2)], check=True, env=_env(), cwd=ROOT, timeout=120)
    run = json.loads((out / "run.json").read_text())
    assert [s["resumed"] for s in run["starts"]] == [False, True] and 0 < run["starts"][1]["step"] <= killed_at
    a, b = _weights(ref_out), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a), max(float((a[k] - b[k]).abs().max()) for k in a)
    steps_logged = [int(line.split(",")[0]) for line in (out / "log.csv").read_text().splitlines()[1:]
                    if ",train," in line]
    assert steps_logged == list(range(1, steps + 1))  # rows past the checkpoint were redone, not duplicated


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedule_matches_the_official_epoch_scheduler():
    """MASA-SR steps CosineAnnealingLR(T_max=500) once at the start of every epoch."""
    from benchmark.training.trainer import lr_factor

    r = load_recipe("masa.rec")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=500)
    spe = 7
    for epoch in range(0, 40):
        sched.step()
        for step in (epoch * spe, epoch * spe + spe - 1):
            assert lr_factor(r["schedule"], step, spe, 1e-4) * 1e-4 == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
    assert lr_factor(load_recipe("ttsr.rec")["schedule"], 10 ** 6, spe, 1e-4) == 1.0


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("name", ["c2_matching", "c2_matching.gan", "c2_matching.student", "datsr", "datsr.gan",
                                  "frfsr", "frfsr.gan", "ssmtf", "ssmtf.gan"])
def test_multistep_schedules_follow_the_official_mmsr_loop(name):
    """The mmsr trainers (C2-Matching, DATSR, FRFSR, SSMTF) step their schedulers before each update except
    the first (train.py, base_model.update_learning_rate), so update s (0-based) runs at MultiStepLR's rate
    after s steps: the drop comes at s = milestone. Their RefRestorationModel builds optimizer_g after the
    schedulers exist, so only a GAN stage's optimizer_d is scheduled and net_g keeps a constant rate; the
    student stage (its own model class) schedules its optimizer. Milestones scaled down for a short loop."""
    from benchmark.training.trainer import lr_factor

    recipe = load_recipe(name)
    adversarial = [loss for loss in recipe["losses"] if loss["type"] == "adversarial"]
    if name == "c2_matching.student":
        scheduled = recipe["schedule"]
    else:
        assert recipe["schedule"]["type"] == "constant"
        if not adversarial:
            return
        scheduled = adversarial[0]["scheduled"]
    sched = {**scheduled, "milestones": [3, 7][: len(scheduled["milestones"])]}
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    official = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=sched["milestones"], gamma=sched["gamma"])
    for current_iter in range(1, 12):  # mmsr's 1-based loop
        if current_iter > 1:
            official.step()
        assert lr_factor(sched, current_iter - 1, 5, 1e-4) * 1e-4 == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)


def test_a_discriminator_follows_its_own_schedule(dataset, tmp_path):
    """``scheduled: {schedule}`` steps only the discriminator's Adam; the generator keeps the recipe's."""
    tiny = get_spec("ttsr").test_kwargs
    d_sched = {"type": "multistep", "unit": "step", "milestones": [1], "gamma": 0.1, "offset": 0}
    over = {**FAST, "iterations": 2, "batch_size": 2, "checkpoint_every": 5, "schedule": {"type": "constant"},
            "losses": [{"type": "l1", "weight": 2.0},
                       {"type": "adversarial", "weight": 1e-3, "gan": "wgan", "gp_weight": 10.0, "d_steps": 1,
                        "input_range": [-1, 1], "discriminator": {"type": "ttsr"}, "scheduled": d_sched,
                        "d_optimizer": {"lr": 1e-4, "betas": [0.0, 0.9]}}]}
    train("ttsr", dataset, tmp_path / "run", overrides=over, model_kwargs=tiny, device="cpu", progress=False,
          val_limit=1, log_every=1)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["losses"]["1"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)  # step 1: after the drop
    assert all(g["lr"] == g["base_lr"] for g in state["optimizer"]["param_groups"])  # the generator: constant


@pytest.mark.parametrize("name", ["c2_matching", "datsr", "frfsr"])
def test_multi_role_model_trains_one_role_and_keeps_the_official_others(dataset, tmp_path, monkeypatch, name):
    """C2-Matching stage 3, DATSR, FRFSR: net_g trains; the extractor, VGG (and FRFSR's RRDB) come from their
    official files, frozen."""
    tiny = get_spec(name).test_kwargs
    weights = tmp_path / "weights"
    monkeypatch.setenv("REFSR_WEIGHTS", str(weights))
    torch.manual_seed(1)
    official = create_model(name, **tiny)
    files = {c.role: c.filename for c in get_spec(name).tag("").files}
    frozen = [role for role in files if role != "net_g"]
    for role in frozen:
        (weights / name).mkdir(parents=True, exist_ok=True)
        torch.save(official.checkpoint_modules()[role].state_dict(), weights / name / files[role])
    out = tmp_path / "run"
    res = train(name, dataset, out, overrides={**FAST, "iterations": 1, "batch_size": 1}, model_kwargs=tiny,
                progress=False, val_limit=0, device="cpu")
    assert set(res["weights"]["files"]) == {files["net_g"]}  # only the trained role is written
    resolved = resolve_weights(name, out)
    assert resolved.files["extractor"] == weights / name / files["extractor"]
    assert resolved.label.startswith(f"trained:{res['run_id']}@")
    model = create_model(name, **tiny)
    load_weights(model, resolved.files)
    for role in frozen:
        a, b = model.checkpoint_modules()[role].state_dict(), official.checkpoint_modules()[role].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    moved = [not torch.equal(v, official.net_g.state_dict()[k]) for k, v in model.net_g.state_dict().items()]
    assert any(moved)


def test_gan_recipe_trains_checkpoints_and_resumes_its_discriminator(dataset, tmp_path):
    """Full TTSR recipe minus the VGG loss (no ImageNet file in tests): L1 + texture + WGAN-GP. A run stopped
    after its first step and started again ends bitwise equal to an uninterrupted one, discriminator included."""
    tiny = get_spec("ttsr").test_kwargs
    over = {**FAST, "iterations": 3, "batch_size": 2, "checkpoint_every": 1,
            "losses": [{"type": "l1", "weight": 2.0}, {"type": "texture", "weight": 1e-2},
                       {"type": "adversarial", "weight": 1e-3, "after": {"iterations": 1}, "gan": "wgan",
                        "gp_weight": 10.0, "d_steps": 2, "input_range": [-1, 1], "discriminator": {"type": "ttsr"},
                        "d_optimizer": {"lr": 1e-4, "betas": [0.0, 0.9]}}]}
    kw = dict(overrides=over, model_kwargs=tiny, device="cpu", progress=False, val_limit=1, log_every=1)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    res = train("ttsr", dataset, whole, **kw)
    first = train("ttsr", dataset, cut, time_limit=1e-9, **kw)  # stops (checkpoint + export) after step 1
    assert first["step"] == 1 and first["stopped_early"]
    again = train("ttsr", dataset, cut, **kw)
    assert again["resumed"] and again["step"] == res["step"] == 3
    a, b = (torch.load(d / "TTSR.pt", weights_only=True) for d in (whole, cut))
    assert set(a) == set(create_model("ttsr", **tiny).state_dict()) - {k for k in a if k.startswith("LTE_copy.")}
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True)["losses"]["2"] for d in (whole, cut))
    assert all(torch.equal(v, cb["net_d"][k]) for k, v in ca["net_d"].items())
    assert int(ca["optimizer"]["state"][0]["step"]) == 2 * 2  # d_steps x the 2 steps after the first
    log = (whole / "log.csv").read_text().splitlines()
    head = log[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in log[1:] if ",train," in line]
    assert rows[0]["d_loss"] == "" and rows[0]["adversarial"] == "" and rows[1]["d_loss"] != ""
    assert float(rows[1]["texture"]) > 0
    assert (whole / "curves.png").is_file()  # every term drawn (the WGAN terms can be negative: symlog)


def test_init_from_starts_the_trained_roles_from_another_runs_files(dataset, tmp_path):
    """A stage built on another (MASA's GAN on MASA-rec): init_from loads the files before the first step."""
    first = tmp_path / "rec"
    train(MODEL, dataset, first, overrides={**FAST, "iterations": 1, "batch_size": 2}, model_kwargs=TINY,
          progress=False, val_limit=0)
    out = tmp_path / "next"
    init = {"model": MODEL, "weights": str(first)}
    train(MODEL, dataset, out, overrides={**FAST, "iterations": 0, "init_from": init}, model_kwargs=TINY,
          progress=False, val_limit=0, seed=5)
    a, b = _weights(first), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    init = json.loads((out / "run.json").read_text())["init_from"]
    assert init["label"].startswith("trained:") and init["files"]["net"]["path"] == str(first / "masa_rec.pth")
    assert load_recipe("masa")["init_from"] == {"model": "masa.rec", "weights": "official"}


def _srntt_official_stand_ins(weights: Path, tiny: dict):
    """Random SRNTT files in the official formats at the official place: upscale.npz, srntt_init.npz
    (TensorLayer arrays) and the MatConvNet VGG19 .mat (conv1_1-conv3_1)."""
    torch.manual_seed(2)
    official = create_model("srntt.init", **tiny)
    (weights / "srntt").mkdir(parents=True)
    for c in get_spec("srntt").tag("init").files:
        official.write_checkpoint(c.role, weights / "srntt" / c.filename)
    return official


def test_srntt_init_then_full_recipe_train_export_official_npz_and_reload(dataset, tmp_path, monkeypatch):
    """SRNTT's two stages: srntt.init (L1) writes srntt_init.npz; srntt (L1 + MatConvNet perceptual + Gram texture
    + WGAN-GP with SRNTT's discriminator) starts from it (init_from) and writes srntt.npz. Both are TensorLayer
    .npz lists in the official variable order, load through resolve_weights / SRNTT.read_checkpoint, and the
    frozen content extractor and VGG19 stay the official files."""
    from models.srntt import official_variable_names, read_tensorlayer_npz

    tiny = get_spec("srntt").test_kwargs
    weights = tmp_path / "weights"
    monkeypatch.setenv("REFSR_WEIGHTS", str(weights))
    official = _srntt_official_stand_ins(weights, tiny)
    kw = dict(model_kwargs=tiny, device="cpu", progress=False, val_limit=0, log_every=1)
    first = tmp_path / "init"
    res = train("srntt.init", dataset, first, overrides={**FAST, "iterations": 1, "batch_size": 2}, **kw)
    assert set(res["weights"]["files"]) == {"srntt_init.npz"}  # only the trained role is written
    arrays = read_tensorlayer_npz(first / "srntt_init.npz")
    names = official_variable_names("texture_transfer", tiny["num_res_blocks"])
    assert len(arrays) == len(names) and arrays[0].shape == (3, 3, 64 + 256, 64)  # TF layout (h, w, in, out)
    # pickled as NumPy 1.x does, so the authors' TensorFlow code can load it as well
    assert b"cnumpy.core.multiarray\n_reconstruct" in zipfile.ZipFile(first / "srntt_init.npz").read("params.npy")
    resolved = resolve_weights("srntt.init", first)  # what benchmark.run --weights OUT does
    assert resolved.label.startswith(f"trained:{res['run_id']}@")
    assert resolved.files["content_extractor"] == weights / "srntt" / "upscale.npz"
    model = create_model("srntt.init", **tiny)
    load_weights(model, resolved.files)
    for role in ("content_extractor", "vgg19"):  # frozen: the official files' values
        a, b = model.checkpoint_modules()[role].state_dict(), official.checkpoint_modules()[role].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), role
    moved = [not torch.equal(v, official.texture_transfer.state_dict()[k])
             for k, v in model.texture_transfer.state_dict().items()]
    assert any(moved)

    out = tmp_path / "full"
    over = {**FAST, "iterations": 1, "batch_size": 2, "init_from.weights": str(first),
            "losses.1.layer": "relu2_1"}  # the stand-in VGG file holds conv1_1-conv3_1 only
    res = train("srntt", dataset, out, overrides=over, **kw)
    info = json.loads((out / "run.json").read_text())
    assert info["init_from"]["files"]["texture_transfer"]["path"] == str(first / "srntt_init.npz")
    log = (out / "log.csv").read_text().splitlines()
    rows = [dict(zip(log[0].split(","), line.split(","))) for line in log[1:] if ",train," in line]
    assert all(float(r["texture"] or 0) == 0 for r in rows)  # the Gram loss is logged under its own name
    assert float(rows[0]["texture_gram"]) > 0 and rows[0]["d_loss"] != "" and float(rows[0]["perceptual"]) > 0
    full = create_model("srntt", **tiny)
    load_weights(full, resolve_weights("srntt", out).files)
    assert len(read_tensorlayer_npz(out / "srntt.npz")) == len(names)
    after = full.texture_transfer.state_dict()
    assert any(not torch.equal(v, model.texture_transfer.state_dict()[k]) for k, v in after.items())
    d_state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["losses"]["3"]
    assert int(d_state["optimizer"]["state"][0]["step"]) == 3  # d_steps: SRNTT's 2 D-only updates + 1 with G
