"""SRNTT: official TF variable fixture, official file formats, matching/swapping, tiny forward.

Every model here has random weights (no official weights are available offline): the tests check
structure, loading and the algorithm, not image quality.
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_model, get_spec
from models.weights import MissingWeights, load_weights, resolve_weights
from models.checkpoint import CheckpointError
from models.srntt import (depth_to_space, match_patches, official_variable_names, read_tensorlayer_npz,
                          swap_features, tf_to_torch_key)

KEYS = Path(__file__).parent / "fixtures" / "keys" / "srntt.json"
ROLES = ("content_extractor", "texture_transfer", "vgg19")


def _torch_shape(tf_shape: list[int]) -> tuple[int, ...]:
    return tuple(tf_shape[::-1][:2] + tf_shape[:2]) if len(tf_shape) == 4 else tuple(tf_shape)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Inputs here are a few pixels: extra threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fixture():
    return json.loads(KEYS.read_text())["roles"]


@pytest.fixture(scope="module")
def full_model():
    return create_model("srntt").eval()  # random weights


def test_state_dict_is_the_official_tf_variables(fixture, full_model):
    sd = full_model.state_dict()
    expected = {}
    for role in ROLES:
        names = [n for n, _ in fixture[role]["variables"]]
        assert official_variable_names(role) == names, role  # the order the official .npz files use
        expected.update({tf_to_torch_key(n): _torch_shape(s) for n, s in fixture[role]["variables"]})
        module = getattr(full_model, "vgg" if role == "vgg19" else role)
        assert sum(p.numel() for p in module.parameters()) == fixture[role]["params"], role
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_key_rule_examples():
    assert tf_to_torch_key("texture_transfer/small/resblock_3/bn1/moving_variance:0") == \
        "texture_transfer.small.blocks.3.bn1.running_var"
    assert tf_to_torch_key("content_extractor/n64s1/c/m/W_conv2d:0") == "content_extractor.conv_mid.weight"
    assert tf_to_torch_key("vgg19/conv3_1/b:0") == "vgg.conv3_1.bias"
    with pytest.raises(KeyError):
        tf_to_torch_key("discriminator/n32s1/c/W_conv2d:0")


def test_depth_to_space_is_tensorflow_order():
    r, c = 2, 3
    x = torch.arange(r * r * c * 2 * 2, dtype=torch.float32).view(1, r * r * c, 2, 2)
    y = depth_to_space(x, r)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                assert torch.equal(y[0, ch, i::r, j::r], x[0, (i * r + j) * c + ch])


def _official_swap(content: np.ndarray, condition: np.ndarray, styles: list[np.ndarray]):
    """The official swap.py algorithm written out with loops, on (h, w, c) arrays."""
    def patches(fmap, k, s):
        h, w, _ = fmap.shape
        return np.stack([fmap[i:i + k, j:j + k] for i in range(0, h - k + 1, s) for j in range(0, w - k + 1, s)], -1)

    cond = patches(condition, 3, 1)
    cond = cond / np.sqrt((cond ** 2).sum(axis=(0, 1, 2)))
    h, w, _ = content.shape
    idx = np.zeros((h - 2, w - 2), dtype=np.int64)
    for i in range(h - 2):
        for j in range(w - 2):
            idx[i, j] = np.argmax(np.tensordot(content[i:i + 3, j:j + 3], cond, axes=3))
    maps = []
    for style in styles:
        r = style.shape[0] // condition.shape[0]
        src = patches(style, 3 * r, r)
        out = np.zeros((h * r, w * r, style.shape[2]))
        count = np.zeros((h * r, w * r, 1))
        for i in range(h - 2):
            for j in range(w - 2):
                out[i * r:i * r + 3 * r, j * r:j * r + 3 * r] += src[..., idx[i, j]]
                count[i * r:i * r + 3 * r, j * r:j * r + 3 * r] += 1
        maps.append(out / count)
    return idx, maps


def test_matching_and_swapping_equal_the_official_algorithm_chunked_or_not():
    g = torch.Generator().manual_seed(0)
    content, condition = torch.rand(4, 7, 9, generator=g), torch.rand(4, 8, 10, generator=g)
    styles = [torch.rand(4, 8, 10, generator=g), torch.rand(3, 16, 20, generator=g), torch.rand(2, 32, 40, generator=g)]
    to_np = lambda t: t.permute(1, 2, 0).double().numpy()  # noqa: E731
    idx_ref, maps_ref = _official_swap(to_np(content), to_np(condition), [to_np(s) for s in styles])

    whole = match_patches(content, condition)
    chunked = match_patches(content, condition, chunk_bytes=1)  # one content row per band
    assert torch.equal(whole, chunked)
    assert np.array_equal(whole.numpy(), idx_ref)
    for style, ratio, ref in zip(styles, (1, 2, 4), maps_ref):
        out = swap_features(whole, style, ratio)
        assert torch.equal(out, swap_features(whole, style, ratio, chunk_bytes=1))
        np.testing.assert_allclose(to_np(out), ref, rtol=1e-5, atol=1e-6)


def test_matching_keeps_the_first_of_equal_scores():
    content = torch.ones(2, 3, 3)
    condition = torch.ones(2, 5, 5)  # all nine patches score the same
    assert match_patches(content, condition).item() == 0
    assert match_patches(content, condition, chunk_bytes=1).item() == 0


def test_tiny_forward_random_weights_and_batch_independence():
    spec = get_spec("srntt")
    model = create_model("srntt", **spec.test_kwargs).eval()  # random weights
    g = torch.Generator().manual_seed(1)
    lr, ref = torch.rand(2, 3, 6, 7, generator=g), torch.rand(2, 3, 27, 30, generator=g)
    with torch.no_grad():
        out = model(lr, ref)
        single = model(lr[1:], ref[1:])
    assert out.shape == (2, 3, 24, 28)
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out[1:], single, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least"):
        model(lr, ref[..., :11, :11])


def _save_tensorlayer_npz(path: Path, arrays: list[np.ndarray]) -> None:
    params = np.empty(len(arrays), dtype=object)  # what TensorLayer's save_npz writes
    params[:] = arrays
    np.savez(path, params=params)


def _save_matconvnet_vgg(path: Path, kernels: dict[str, np.ndarray], biases: dict[str, np.ndarray]) -> None:
    from scipy.io import savemat

    names = ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2",
             "pool2", "conv3_1", "relu3_1", "conv3_2"]
    cells = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        weights = np.zeros((0, 0))
        if name in kernels:
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0], weights[0, 1] = kernels[name], biases[name]
        cells[0, i] = {"weights": weights, "name": name, "type": "conv"}
    savemat(path, {"layers": cells})


def test_official_files_load_unchanged(tmp_path, fixture):
    model = create_model("srntt", num_res_blocks=4)  # fewer texture blocks: a smaller file to write
    shapes = {n: s for role in ROLES for n, s in fixture[role]["variables"]}
    names = {role: official_variable_names(role, 4) for role in ROLES}
    rng = np.random.default_rng(0)
    values = {role: [rng.standard_normal(shapes[n]).astype(np.float32) for n in names[role]] for role in ROLES}
    _save_tensorlayer_npz(tmp_path / "upscale.npz", values["content_extractor"])
    _save_tensorlayer_npz(tmp_path / "srntt.npz", values["texture_transfer"])
    vgg = dict(zip(names["vgg19"], values["vgg19"]))
    convs = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    _save_matconvnet_vgg(tmp_path / "vgg.mat",  # MatConvNet kernels are (x, y, in, out)
                         {c: vgg[f"vgg19/{c}/w:0"].transpose(1, 0, 2, 3) for c in convs},
                         {c: vgg[f"vgg19/{c}/b:0"].reshape(-1, 1) for c in convs})
    load_weights(model, {"content_extractor": str(tmp_path / "upscale.npz"),
                         "texture_transfer": str(tmp_path / "srntt.npz"), "vgg19": str(tmp_path / "vgg.mat")})
    sd = model.state_dict()
    for role in ROLES:
        for name, arr in zip(names[role], values[role]):
            expected = arr.transpose(3, 2, 0, 1) if arr.ndim == 4 else arr
            assert np.array_equal(sd[tf_to_torch_key(name)].numpy(), expected), name

    # a TF checkpoint converted to plain dicts (TF names, torch layout) loads role by role
    other = create_model("srntt", num_res_blocks=4)
    files = {}
    for role in ROLES:
        torch.save({n: sd[tf_to_torch_key(n)] for n in names[role]}, tmp_path / f"{role}.pth")
        files[role] = tmp_path / f"{role}.pth"
    load_weights(other, files)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in sd.items())


def test_npz_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("params.npy", header.getvalue() + pickle.dumps([Evil()]))
    with pytest.raises(CheckpointError, match="refusing to load builtins.print"):
        read_tensorlayer_npz(path)


def test_wrong_or_missing_files_are_clear(tmp_path, monkeypatch):
    model = create_model("srntt")
    _save_tensorlayer_npz(tmp_path / "short.npz", [np.zeros((3, 3, 3, 64), np.float32), np.zeros(64, np.float32)])
    with pytest.raises(CheckpointError, match="holds 2 arrays"):
        model.read_checkpoint("texture_transfer", tmp_path / "short.npz")
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights, match="upscale.npz"):
        resolve_weights("srntt")


def test_torchvision_vgg19_option(tmp_path):
    model = create_model("srntt", vgg="torchvision")
    tv = {f"features.{i}.{leaf}": torch.full_like(getattr(model.vgg, n).get_parameter(leaf), float(i))
          for n, i in {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10}.items()
          for leaf in ("weight", "bias")}
    tv["classifier.0.weight"] = torch.zeros(2, 2)  # the full torchvision file has more than we use
    torch.save(tv, tmp_path / "vgg19-dcbb9e9d.pth")
    load_weights(model, {"vgg19": tmp_path / "vgg19-dcbb9e9d.pth"})
    assert torch.all(model.vgg.conv2_1.weight == 5)
    x = torch.rand(1, 3, 4, 4)  # torchvision's normalisation: ImageNet mean/std on [0, 1]
    imagenet = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close((x * 255 - model.vgg.mean) / model.vgg.std, imagenet)
