"""Official weights on request, against a local HTTP server only (127.0.0.1): resumed downloads,
key/shape checks before a file goes into place, the official-hash record, Drive links without gdown,
pages that need a manual download, and ``benchmark.run --download`` before scoring."""
from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
import torch
from torch import nn

from models import pretrained, registry
from models.base import CheckpointFile, ModelSpec, RefSRModel, WeightTag
from models.fetch import FetchError, fetch_weights, source
from models.weights import official_path, recorded_hashes, resolve_weights

LOOPBACK = ("127.0.0.1", "localhost", "::1")


# -- a loopback-only network and a file server with Range support -----------------------------------

_REAL_CONNECT = socket.socket.connect  # captured at import, before conftest's per-test guard
_REAL_CREATE = socket.create_connection


@pytest.fixture
def loopback(monkeypatch):
    """Allow connections to 127.0.0.1 only (conftest's guard refuses every other address)."""
    guarded_connect, guarded_create = socket.socket.connect, socket.create_connection

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] in LOOPBACK:
            return _REAL_CONNECT(self, address)
        return guarded_connect(self, address)

    def create_connection(address, *args, **kwargs):
        if address[0] in LOOPBACK:
            return _REAL_CREATE(address, *args, **kwargs)
        return guarded_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


class FileServer:
    """Serves ``files`` (path -> bytes); honours ``Range: bytes=N-``; logs every request's Range;
    paths in ``cut`` are answered once with only their first half (then the connection drops)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []
        self.cut: set[str] = set()
        self.stall: set[str] = set()  # paths whose body comes only after a pause (timeouts)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if self.path in server.stall:
                    self.wfile.flush()
                    time.sleep(1.0)
                if self.path in server.cut:
                    server.cut.discard(self.path)
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server(loopback):
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


# -- a tiny registered model whose official file is served locally ----------------------------------

class Tiny(RefSRModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 3, 3, padding=1)
        self.tail = nn.Conv2d(3, 3, 1)

    def forward(self, lr, ref):
        up = nn.functional.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return (up + 0 * self.tail(self.body(up))).clamp(0, 1)


def _bytes(sd) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def _official_file(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return _bytes({"params": Tiny().state_dict()})  # wrapped, as BasicSR-style releases are


def _register(name: str, url: str = "", download: str = "", filename: str = "tiny.pth"):
    spec = ModelSpec(name=name, scale=4, tags=(WeightTag("", (CheckpointFile(filename, url=url, download=download),)),))
    registry.register_model(spec)(lambda **kw: Tiny())
    return spec


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path / "weights"))
    names = []

    def make(name="test_fetch_tiny", **kw):
        _register(name, **kw)
        names.append(name)
        return name

    yield make
    for n in names:
        registry.MODELS.remove(n)


# -- tests -----------------------------------------------------------------------------------------

def test_partial_download_resumes_with_range_and_is_recorded_as_official(server, tiny_model):
    data = _official_file()
    server.files["/w/tiny.pth"] = data
    server.cut.add("/w/tiny.pth")  # the first transfer drops half-way
    url = server.url("/w/tiny.pth")
    name = tiny_model(url=url)
    dest = official_path(name, "tiny.pth")

    with pytest.raises(FetchError, match="run the command again to resume") as err:
        fetch_weights(name, progress=False, log=lambda *_: None)
    assert err.value.problems[0].kind == "failed"
    part = dest.with_name("tiny.pth.part")
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    have = part.stat().st_size

    report = fetch_weights(name, progress=False, log=lambda *_: None)
    assert server.log[-1] == ("/w/tiny.pth", f"bytes={have}-")  # resumed, not restarted
    assert report.fetched["net"] == dest and not part.exists()
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(data).hexdigest()
    rec = recorded_hashes()[name]["net"]
    assert rec["sha256"] == digest and rec["source"] == url and rec["file"] == "tiny.pth"
    resolved = resolve_weights(name)
    assert resolved.label == "official" and resolved.sha256["net"] == digest
    # present now: a second fetch downloads nothing
    n = len(server.log)
    fetch_weights(name, progress=False, log=lambda *_: None)
    assert len(server.log) == n


def test_file_with_wrong_keys_is_refused_with_the_diff_and_never_placed(server, tiny_model):
    torch.manual_seed(0)
    sd = Tiny().state_dict()
    sd["head.weight"] = sd.pop("tail.weight")  # renamed key
    sd["body.weight"] = torch.zeros(3, 3, 5, 5)  # wrong shape
    server.files["/bad.pth"] = _bytes(sd)
    name = tiny_model(url=server.url("/bad.pth"), filename="tiny.pth")

    with pytest.raises(FetchError) as err:
        fetch_weights(name, progress=False, log=lambda *_: None)
    msg = str(err.value)
    assert err.value.problems[0].kind == "refused" and "does not fit" in msg
    assert "missing from the checkpoint" in msg and "tail.weight" in msg
    assert "unexpected in the checkpoint" in msg and "head.weight" in msg
    assert "shape mismatch" in msg and "body.weight" in msg
    folder = official_path(name, "tiny.pth").parent
    assert not official_path(name, "tiny.pth").exists()
    assert not [p for p in folder.iterdir() if not p.name.endswith(".lock")]  # no .part, no checking copy
    assert name not in recorded_hashes()


def test_http_errors_are_reported_with_their_status(server, tiny_model, capsys):
    name = tiny_model(url=server.url("/nowhere/tiny.pth"))
    assert pretrained.main(["--fetch", name]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "tiny.pth" in err
    assert not official_path(name, "tiny.pth").exists()


def test_a_stalled_server_times_out_with_a_clear_message(server, tmp_path):
    from core.download import DownloadError, http_download

    server.files["/slow.pth"] = b"x" * 1000
    server.stall.add("/slow.pth")
    with pytest.raises(DownloadError, match=r"connection lost after 0 of 1000 bytes \(TimeoutError\).*resume"):
        http_download(server.url("/slow.pth"), tmp_path / "slow.pth.part", timeout=0.3, progress=False)


def test_drive_link_without_gdown_says_how_to_get_it(tiny_model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gdown", None)  # not installed (import fails)
    url = "https://drive.google.com/file/d/1AbCdEf/view?usp=sharing"
    name = tiny_model(url=url)
    assert source(registry.get_spec(name).tag("").files[0]) == ("drive", url)
    with pytest.raises(FetchError) as err:
        fetch_weights(name, progress=False, log=lambda *_: None)
    problem = err.value.problems[0]
    assert problem.kind == "missing-package"
    assert "gdown" in problem.message and "pip install" in problem.message and "refsr-bench[drive]" in problem.message
    assert url in problem.message and str(official_path(name, "tiny.pth")) in problem.message
    assert pretrained.main(["--fetch", name]) == 1
    assert "gdown, which is not installed" in capsys.readouterr().err


def test_drive_folder_through_gdown(server, tiny_model, monkeypatch):
    """The gdown path: list the folder, fetch the file of that name (a stand-in for gdown here)."""
    data = _official_file(seed=3)
    calls = []

    def download_folder(url=None, skip_download=False, **kw):
        calls.append(("folder", url, skip_download))
        return [types.SimpleNamespace(id="ID1", path="other.pth", local_path="x/other.pth"),
                types.SimpleNamespace(id="ID2", path="sub/tiny.pth", local_path="x/sub/tiny.pth")]

    def download(url=None, output=None, **kw):
        calls.append(("file", url, kw.get("resume")))
        with open(output, "wb") as f:
            f.write(data)
        return output

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download, download_folder=download_folder))
    folder = "https://drive.google.com/drive/folders/1FolderId"
    name = tiny_model(url=folder)
    fetch_weights(name, progress=False, log=lambda *_: None)
    assert calls == [("folder", folder, True), ("file", "https://drive.google.com/uc?id=ID2", True)]
    assert official_path(name, "tiny.pth").read_bytes() == data
    assert recorded_hashes()[name]["net"]["source"] == folder
    assert resolve_weights(name).label == "official"


def test_web_page_needs_a_manual_download(tiny_model, capsys):
    page = "https://github.com/someone/repo#pretrained-models (OneDrive, Baidu)"
    name = tiny_model(url=page)
    assert pretrained.main(["--fetch", name]) == 1
    err = capsys.readouterr().err
    assert "no direct download link" in err and "by hand" in err and str(official_path(name, "tiny.pth")) in err
    unpublished = tiny_model("test_fetch_unpublished")
    assert pretrained.main(["--fetch", unpublished]) == 1
    assert "not published" in capsys.readouterr().err


def test_official_specs_declare_fetchable_sources():
    """Every published file has a source the fetcher understands; pages get a message instead."""
    kinds = {}
    for full in registry.list_models(tags=True):
        arch, tag = registry.split_name(full)
        t = registry.get_spec(arch).tag(tag)
        for ck in t.files if t else ():
            kinds[f"{arch}/{ck.filename}"] = source(ck)[0]
    assert kinds["ttsr/TTSR-rec.pt"] == "drive" and kinds["masa/masa_rec.pth"] == "drive"
    assert kinds["srntt/srntt.npz"] == "http" and kinds["c2_matching/vgg19-dcbb9e9d.pth"] == "http"
    assert kinds["def/256x256_diffusion_uncond.pt"] == "http" and kinds["frfsr/frfsr_rrdb_x4.pth"] == "unpublished"


def test_nothing_downloads_without_the_flag(server, tiny_model, tmp_path):
    from benchmark import run
    from tests.harness_data import make_tiny_dataset

    server.files["/tiny.pth"] = _official_file()
    name = tiny_model(url=server.url("/tiny.pth"))
    data = make_tiny_dataset(tmp_path / "data", groups=1, levels=1, size=32)
    out = tmp_path / "r"
    assert run.main(["--models", name, "--datasets", str(data), "--out", str(out), "--device", "cpu",
                     "--metrics", "psnr_y", "--no-publish", "--no-profile"]) == 0
    assert server.log == [] and not official_path(name, "tiny.pth").exists()
    why = json.loads((out / "run.json").read_text())["unavailable_models"][name]
    assert "models.pretrained --fetch" in why


def test_run_download_fetches_before_scoring(server, tiny_model, tmp_path, monkeypatch):
    from benchmark import evaluation, run
    from tests.harness_data import make_tiny_dataset

    server.files["/tiny.pth"] = _official_file(seed=5)
    name = tiny_model(url=server.url("/tiny.pth"))
    data = make_tiny_dataset(tmp_path / "data", groups=2, levels=1, size=32)
    order = []
    real_run = evaluation.Evaluator.run

    def scoring(self, jobs):
        order.append(("score", official_path(name, "tiny.pth").is_file(), len(server.log)))
        return real_run(self, jobs)

    monkeypatch.setattr(evaluation.Evaluator, "run", scoring)
    out = tmp_path / "r"
    assert run.main(["--models", f"{name},bicubic", "--datasets", str(data), "--out", str(out), "--device", "cpu",
                     "--metrics", "psnr_y", "--no-publish", "--no-profile", "--download"]) == 0
    assert order == [("score", True, 1)]  # downloaded once, before scoring
    df = pd.read_parquet(out / "results.parquet")
    rows = df[df["model"] == name]
    assert len(rows) == 2 and (rows["status"] == "ok").all() and (rows["weights"] == "official").all()
    assert json.loads(rows["weights_sha256"].iloc[0])["net"] == hashlib.sha256(server.files["/tiny.pth"]).hexdigest()


def test_run_download_stops_before_scoring_when_a_file_is_refused(server, tiny_model, tmp_path):
    from benchmark import run
    from tests.harness_data import make_tiny_dataset

    server.files["/tiny.pth"] = _bytes({"nothing.weight": torch.zeros(1)})
    name = tiny_model(url=server.url("/tiny.pth"))
    data = make_tiny_dataset(tmp_path / "data", groups=1, levels=1, size=32)
    out = tmp_path / "r"
    assert run.main(["--models", name, "--datasets", str(data), "--out", str(out), "--device", "cpu",
                     "--metrics", "psnr_y", "--no-publish", "--download"]) == 2
    assert not (out / "results.parquet").exists() and not official_path(name, "tiny.pth").exists()


@pytest.fixture
def fake_pyiqa(monkeypatch):
    """A stand-in for the optional pyiqa: create_metric(...).net is a small network."""
    import importlib.machinery

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 1)

    made = []

    def create_metric(name, device=None, pretrained=True, pretrained_model_path=None, **kw):
        assert pretrained is False and pretrained_model_path is None
        made.append((name, str(device), str(Net().head.weight.device)))
        return types.SimpleNamespace(net=Net().to(device))

    mod = types.ModuleType("pyiqa")
    mod.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    mod.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", mod)
    return Net, made


def test_iqa_weights_are_fetched_checked_and_recorded(server, fake_pyiqa, tmp_path, monkeypatch):
    from benchmark import run
    from benchmark.metrics import iqa

    Net, made = fake_pyiqa
    monkeypatch.setenv(iqa.IQA_WEIGHTS_ENV, str(tmp_path / "iqa"))
    torch.manual_seed(0)
    server.files["/musiq.pth"] = good = _bytes(Net().state_dict())
    server.files["/maniqa.pt"] = _bytes({"head.weight": torch.zeros(2, 4)})  # wrong shape, no bias
    pyiqa_name, filename, _ = iqa.IQA_FILES["musiq"]
    monkeypatch.setitem(iqa.IQA_FILES, "musiq", (pyiqa_name, filename, server.url("/musiq.pth")))
    monkeypatch.setitem(iqa.IQA_FILES, "maniqa", ("maniqa", "ckpt_koniq10k.pt", server.url("/maniqa.pt")))

    dest = iqa.fetch_iqa_weights("musiq", progress=False, log=lambda *_: None)
    assert dest == tmp_path / "iqa" / filename and dest.read_bytes() == good
    assert made == [("musiq", "meta", "meta")]  # checked against a network with no storage
    rec = iqa.recorded_iqa_hashes()["musiq"]["net"]
    assert rec["sha256"] == hashlib.sha256(good).hexdigest() and rec["source"] == server.url("/musiq.pth")
    with pytest.raises(RuntimeError, match="does not fit") as err:
        iqa.fetch_iqa_weights("maniqa", progress=False, log=lambda *_: None)
    assert "head.bias" in str(err.value) and "shape mismatch" in str(err.value)
    assert not (tmp_path / "iqa" / "ckpt_koniq10k.pt").exists()
    # benchmark.run --download fetches the metric files a run asks for (here: refused -> exit 2)
    data = __import__("tests.harness_data", fromlist=["x"]).make_tiny_dataset(tmp_path / "d", groups=1, levels=1, size=32)
    args = ["--models", "bicubic", "--datasets", str(data), "--download", "--dry-run"]
    assert run.main([*args, "--metrics", "psnr_y,musiq"]) == 0
    assert run.main([*args, "--metrics", "psnr_y,maniqa"]) == 2


def test_list_models_says_how_to_fetch_absent_weights(server, tiny_model, capsys):
    from benchmark import run

    name = tiny_model(url=server.url("/tiny.pth"))
    server.files["/tiny.pth"] = _official_file()
    unpublished = tiny_model("test_fetch_unpublished", filename="u.pth")
    assert run.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert f"fetch: python -m models.pretrained --fetch {name}\n" in out
    assert f"--fetch {unpublished}" not in out           # nothing the fetcher could get
    assert pretrained.main(["--fetch", name]) == 0
    capsys.readouterr()
    assert run.main(["--list-models"]) == 0
    assert f"--fetch {name}" not in capsys.readouterr().out   # present now: no hint
