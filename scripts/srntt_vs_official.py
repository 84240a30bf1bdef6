"""Our SRNTT against the official TensorFlow pipeline: same weights, max abs difference and CPU time.

Usage (one interpreter that has both TensorFlow and this project's torch):
    python scripts/srntt_vs_official.py OFFICIAL_DIR [--lr 128 128] [--ref 512 512] [--runs 3]
        [--threads 2] [--torch-site /work/main/.venv/lib/python3.11/site-packages]

The official code (ZZUTK/SRNTT) targets TensorFlow 1.13 / Python 3.6 and does not import on a
current stack (``tf.placeholder``, ``scipy.misc.imresize``), so OFFICIAL_DIR must hold a module
``official.py`` with the official ``SRNTT.model`` graph (as a function ``model(inputs, maps,
is_train, num_res_blocks)``), ``VGG19(input_image, params, final_layer)`` and ``Swap`` transcribed
from SRNTT/model.py, vgg19.py and swap.py onto ``tensorflow.compat.v1``, and the ``tensorlayer``
package they use (PyPI 1.5.0 with SubpixelConv2d as vendored: ``tf.depth_to_space``). Nothing
from the official repository is part of this project.

What runs on each side is the official test procedure (SRNTT.test, one reference, no tiling):
VGG19 features of Ref, Ref↓↑ and LR↑ (PIL bicubic on uint8), relu3_1 patch matching (TF conv in
512 MB batches, numpy argmax), patch stitching on three layers, then the network. Random weights
are written once in the official formats (TensorLayer ``.npz`` lists and a MatConvNet-layout
``.mat``), read by the official side the official way and by ours through ``models.weights.load_weights``. The
images are crops of two photos of ../shared/data/albums/lund (random images when it is absent).
Runs alternate in one process; medians and the ratio ours/official (< 1 = ours faster) are printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
LUND = REPO_ROOT.parent / "shared" / "data" / "albums" / "lund"
VGG_LAYERS = ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2",
              "relu2_2", "pool2", "conv3_1", "relu3_1")
VGG_CONVS = {"conv1_1": (3, 64), "conv1_2": (64, 64), "conv2_1": (64, 128), "conv2_2": (128, 128),
             "conv3_1": (128, 256)}


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """``scipy.misc.imresize(img, scale, interp='bicubic')`` on uint8 RGB: PIL bicubic to int(size*scale)."""
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((int(w * scale), int(h * scale)), Image.BICUBIC))


def images(lr_hw: tuple[int, int], ref_hw: tuple[int, int], rng: np.random.Generator):
    """(LR uint8 made as the official test makes it from an HR crop, Ref uint8 cropped to ×4)."""
    hr_hw = (4 * lr_hw[0], 4 * lr_hw[1])
    photos = sorted(LUND.glob("*.jpg")) if LUND.is_dir() else []
    if len(photos) >= 2:
        hr = np.asarray(Image.open(photos[0]).convert("RGB"))[: hr_hw[0], : hr_hw[1]]
        ref = np.asarray(Image.open(photos[1]).convert("RGB"))[: ref_hw[0], : ref_hw[1]]
    else:
        hr = rng.integers(0, 256, (*hr_hw, 3), dtype=np.uint8)
        ref = rng.integers(0, 256, (*ref_hw, 3), dtype=np.uint8)
    ref = ref[: ref.shape[0] // 4 * 4, : ref.shape[1] // 4 * 4]
    return imresize(np.ascontiguousarray(hr), 0.25), np.ascontiguousarray(ref)


def random_value(name: str, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """A random value for one official variable; BN statistics too, so no layer is an identity."""
    if "moving_variance" in name:
        val = rng.uniform(0.5, 1.5, shape)
    elif "gamma" in name:
        val = rng.uniform(0.3, 0.8, shape)
    elif "moving_mean" in name or "beta" in name or name.endswith(("b_conv2d:0", "/b:0")):
        val = rng.normal(0, 0.05, shape)
    else:  # conv kernels (h, w, in, out): He init, damped inside the residual stacks
        gain = 0.5 if ("/c1/" in name or "/c2/" in name or "resblock" in name) else 1.0
        if name.endswith(("out/W_conv2d:0", "/conv1/W_conv2d:0")):
            gain = 0.05  # the swapped VGG maps are in the hundreds: keep tanh off saturation
        val = rng.normal(0, gain * np.sqrt(2.0 / (shape[0] * shape[1] * shape[2])), shape)
    return val.astype(np.float32)


def save_tensorlayer_npz(path: Path, arrays: list[np.ndarray]) -> None:
    """As TensorLayer's ``files.save_npz``: ``np.savez(name, params=[...])`` (an object array)."""
    params = np.empty(len(arrays), dtype=object)
    params[:] = arrays
    np.savez(path, params=params)


def save_matconvnet_vgg19(path: Path, rng: np.random.Generator) -> None:
    """Random VGG19 conv1_1..conv3_1 in MatConvNet's layout: layers{i}.weights = {kernel, bias},
    kernel indexed (x, y, in, out) as the official vgg19.py reads it, bias (out, 1)."""
    from scipy.io import savemat

    cells = np.empty((1, len(VGG_LAYERS)), dtype=object)
    for i, name in enumerate(VGG_LAYERS):
        weights = np.zeros((0, 0))
        if name in VGG_CONVS:
            cin, cout = VGG_CONVS[name]
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0] = random_value(f"vgg19/{name}/w:0", [3, 3, cin, cout], rng)
            weights[0, 1] = random_value(f"vgg19/{name}/b:0", [cout, 1], rng)
        cells[0, i] = {"weights": weights, "name": name, "type": name.rstrip("_0123456789")}
    savemat(path, {"layers": cells})


class Official:
    """The official test graph and procedure (SRNTT.test, one reference, no tiling, no weight map)."""

    def __init__(self, official, tf, folder: Path, threads: int, rng: np.random.Generator):
        from scipy.io import loadmat

        self.input_srntt = tf.placeholder(tf.float32, [1, None, None, 3])
        self.input_vgg19 = tf.placeholder(tf.float32, [1, None, None, 3])
        self.maps = tuple(tf.placeholder(tf.float32, (1, None, None, c)) for c in (256, 128, 64))
        self.net_upscale, self.net_srntt = official.model(self.input_srntt, self.maps, is_train=False)
        params = loadmat(str(folder / "imagenet-vgg-verydeep-19.mat"))
        self.vgg = official.VGG19(self.input_vgg19, params, final_layer="relu3_1")
        self.sess = tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=threads,
                                                     inter_op_parallelism_threads=1))
        self.swapper = official.Swap(sess=self.sess)
        self.sess.run(tf.global_variables_initializer())
        for net, file in ((self.net_upscale, "upscale.npz"), (self.net_srntt, "srntt.npz")):
            arrays = [random_value(v.name, v.get_shape().as_list(), rng) for v in net.all_params]
            save_tensorlayer_npz(folder / file, arrays)
            # files.load_and_assign_npz: the saved list is assigned to network.all_params in order
            for var, val in zip(net.all_params, np.load(folder / file, allow_pickle=True)["params"]):
                var.load(val, self.sess)

    def __call__(self, lr: np.ndarray, ref: np.ndarray):
        layers = self.vgg.layers
        styles = self.sess.run([layers["relu3_1"], layers["relu2_1"], layers["relu1_1"]], {self.input_vgg19: [ref]})
        ref_sr = self.sess.run(layers["relu3_1"], {self.input_vgg19: [imresize(imresize(ref, 0.25), 4.0)]})
        lr_sr = self.sess.run(layers["relu3_1"], {self.input_vgg19: [imresize(lr, 4.0)]})
        maps, _, max_idx = self.swapper.conditional_swap_multi_layer(
            content=lr_sr, style=[styles[0]], condition=[ref_sr], other_styles=[[styles[1]], [styles[2]]])
        out_srntt, out_upscale = self.sess.run(
            [self.net_srntt.outputs, self.net_upscale.outputs],
            {self.input_srntt: [lr / 127.5 - 1], **{p: m[None] for p, m in zip(self.maps, maps)}})
        return out_srntt[0], out_upscale[0], maps, max_idx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official_dir", type=Path)
    parser.add_argument("--lr", type=int, nargs=2, default=(128, 128))
    parser.add_argument("--ref", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-site", type=Path, help="site-packages with this project's torch, appended to sys.path")
    args = parser.parse_args()

    if args.torch_site:
        sys.path.append(str(args.torch_site))
    sys.path.insert(0, str(REPO_ROOT))
    import torch  # noqa: E402  (torch and torchvision before TensorFlow: the other order segfaults)

    from models import create_model  # noqa: E402
    from core.resize import pil_bicubic_tensor  # noqa: E402
    from models.weights import load_weights  # noqa: E402
    from models.srntt import match_patches  # noqa: E402

    sys.path.insert(0, str(args.official_dir))
    import official  # noqa: E402  (the transcription described above)
    import tensorflow.compat.v1 as tf  # noqa: E402

    torch.set_num_threads(args.threads)
    tf.disable_v2_behavior()
    rng = np.random.default_rng(0)
    lr, ref = images(tuple(args.lr), tuple(args.ref), rng)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_matconvnet_vgg19(folder / "imagenet-vgg-verydeep-19.mat", rng)
        off = Official(official, tf, folder, args.threads, rng)
        ours = create_model("srntt").eval()
        load_weights(ours, {"content_extractor": str(folder / "upscale.npz"),
                            "texture_transfer": str(folder / "srntt.npz"),
                            "vgg19": str(folder / "imagenet-vgg-verydeep-19.mat")})

    lr_t = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
    ref_t = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    times: dict[str, list[float]] = {"ours": [], "official": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        off_sr, off_up, off_maps, off_idx = off(lr, ref)
        times["official"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.no_grad():
            our_sr = ours(lr_t, ref_t)
        times["ours"].append(time.perf_counter() - t0)

    with torch.no_grad():
        our_maps = ours.swapped_maps(lr_t, ref_t)
        our_up = ours.upscale(lr_t)
        off_maps_t = [torch.from_numpy(np.asarray(m, np.float32)).permute(2, 0, 1)[None] for m in off_maps]
        sr_from_off_maps = (ours.texture_transfer(ours.content_extractor(lr_t * 2 - 1), off_maps_t) + 1) / 2
        h, w = lr.shape[:2]
        content = ours.vgg(pil_bicubic_tensor(lr_t, (4 * h, 4 * w)))["relu3_1"][0]
        ref_du = pil_bicubic_tensor(pil_bicubic_tensor(ref_t, (ref.shape[0] // 4, ref.shape[1] // 4)), ref.shape[:2])
        condition = ours.vgg(ref_du)["relu3_1"][0]
        our_idx = match_patches(content, condition)
        patches = torch.nn.functional.unfold(condition[None], 3)[0].t()
        patches = patches / patches.norm(dim=1, keepdim=True)
        differ = np.argwhere(our_idx.numpy() != off_idx)
        gaps = [abs(float(content[:, i:i + 3, j:j + 3].flatten() @ (patches[our_idx[i, j]] - patches[off_idx[i, j]])))
                / float(content[:, i:i + 3, j:j + 3].flatten() @ patches[our_idx[i, j]]) for i, j in differ]

    print(f"LR {h}x{w}, Ref {ref.shape[0]}x{ref.shape[1]}, threads {args.threads}, runs {args.runs}")
    print(f"matched indices equal to the official ones: {len(differ)} of {our_idx.numel()} differ; "
          f"largest relative correlation gap between the two choices: {max(gaps, default=0.0):.2g}")
    pairs = {"SR output in [0,1]": (our_sr[0].permute(1, 2, 0).numpy(), (off_sr + 1) / 2),
             "SR output from the official swapped maps": (sr_from_off_maps[0].permute(1, 2, 0).numpy(), (off_sr + 1) / 2),
             "Upscale output in [0,1]": (our_up[0].permute(1, 2, 0).numpy(), (off_up + 1) / 2)}
    for layer, ours_map, off_map in zip(("relu3_1", "relu2_1", "relu1_1"), our_maps, off_maps):
        pairs[f"swapped {layer}"] = (ours_map[0].permute(1, 2, 0).numpy(), off_map)
    for name, (a, b) in pairs.items():
        print(f"max |ours - official| {name}: {np.abs(a - b).max():.3g} "
              f"(official value range {b.min():.3g} .. {b.max():.3g})")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median forward: ours {med['ours']:.3f} s, official {med['official']:.3f} s, "
          f"ratio ours/official {med['ours'] / med['official']:.3f}")


if __name__ == "__main__":
    main()
