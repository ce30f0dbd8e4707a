#!/usr/bin/env python3
"""Reference ("oracle") forward pass of a llama-architecture language model stored in GGUF, in numpy.

storytool's Rust LM decoder (GGUF reader, dequantisation, tokenizer, llama forward pass) is tested against
the numbers this script writes. It deliberately shares no code with anything else: the GGUF is parsed by
hand with struct/numpy (no `gguf` package), the forward pass is written out from the llama definition, and
text is tokenized with the Hugging Face `tokenizers` package built from the GGUF's own vocabulary and merges.

What it implements:
  * GGUF v2/v3: every metadata value type (scalars, strings, nested arrays), tensor infos, alignment
    (`general.alignment`, default 32). Tensor dims are listed ne[0] first (fastest varying), so a tensor with
    ne=[in, out] is a row-major [out, in] matrix and y = W x.
  * Dequantisation of F32, F16, Q4_1 and Q8_0 (blocks of 32 along ne[0]); any other type is refused by name.
  * llama: x = token_embd[ids]; per block x += Wo·attn(rope(Wq·n), rope(Wk·n), Wv·n) with n = rmsnorm(x)
    (causal, grouped-query: query head h reads kv head h // (n_head / n_kv)); x += down(silu(gate·n) * up·n)
    with n = rmsnorm(x); logits = output · rmsnorm(x), output tied to token_embd when output.weight is absent.
    RoPE rotates ADJACENT pairs (0,1),(2,3),... with angle pos * base^(-2i/d) (llama.cpp's "normal" mode:
    the HF->GGUF converter has already permuted q/k). `--rope half` gives the NeoX half-split layout instead,
    only to show that it is the wrong one (much higher perplexity).
  * Arithmetic in float64 by default (the reference); `--dtype float32` runs the same pass in float32.

    python3 -m pip install numpy tokenizers
    python3 scripts/oracle/llama_gguf.py MODEL.gguf --text "Once upon a time" --out out.json --logits last
    python3 scripts/oracle/llama_gguf.py MODEL.gguf --tokens 1,2,3 --out out.json [--logits all|last|none]
    python3 scripts/oracle/llama_gguf.py MODEL.gguf --text "The capital of France is" --generate 5

Output JSON: {"tokens": [ids], "nll": [-log p(tokens[i+1] | tokens[..=i]) for i < n-1],
"perplexity": exp(mean nll), "logits": [[vocab floats] per position] (all), [[...]] (last) or absent (none)}.
"""

import argparse
import json
import math
import struct
import sys
import time

import numpy as np

# GGUF metadata value types -> struct format (8 = string, 9 = array).
SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
GGML_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
                   10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
                   17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
                   24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16"}
# Supported types: (elements per block, bytes per block).
BLOCKS = {0: (1, 4), 1: (1, 2), 3: (32, 20), 8: (32, 34)}


class Gguf:
    """A parsed GGUF file: `meta` (key -> value), `meta_types` (key -> type, or (9, element type) for
    arrays), `tensors` (name -> (ne list, ggml type, absolute byte offset))."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.pos = 0
        if self.data[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self.pos = 4
        self.version = self._take("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {self.version} is not supported (only 2 and 3)")
        n_tensors, n_kv = self._take("<Q"), self._take("<Q")
        self.meta, self.meta_types = {}, {}
        for _ in range(n_kv):
            key, vtype = self._string(), self._take("<I")
            if vtype == ARRAY:
                etype, count = self._take("<I"), self._take("<Q")
                self.meta_types[key] = (ARRAY, etype)
                self.meta[key] = self._array(etype, count)
            else:
                self.meta_types[key] = vtype
                self.meta[key] = self._value(vtype)
        infos = []
        for _ in range(n_tensors):
            name, n_dims = self._string(), self._take("<I")
            ne = [self._take("<Q") for _ in range(n_dims)]
            infos.append((name, ne, self._take("<I"), self._take("<Q")))
        align = self.meta.get("general.alignment", 32)
        start = (self.pos + align - 1) // align * align
        self.tensors = {name: (ne, t, start + off) for name, ne, t, off in infos}

    def _take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _string(self):
        n = self._take("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _value(self, vtype):
        if vtype in SCALAR_FORMATS:
            return self._take(SCALAR_FORMATS[vtype])
        if vtype == STRING:
            return self._string()
        if vtype == ARRAY:
            etype, count = self._take("<I"), self._take("<Q")
            return self._array(etype, count)
        raise ValueError(f"unknown GGUF metadata type {vtype}")

    def _array(self, etype, count):
        if etype in SCALAR_FORMATS:
            dt = np.dtype(SCALAR_FORMATS[etype].replace("?", "b1"))
            values = np.frombuffer(self.data, dt, count, self.pos)
            self.pos += count * dt.itemsize
            return values.tolist()
        return [self._value(etype) for _ in range(count)]

    def tensor(self, name, dtype=np.float64):
        """Dequantised tensor as a row-major array of shape ne[::-1] (a matrix is [out, in])."""
        ne, t, off = self.tensors[name]
        if t not in BLOCKS:
            raise ValueError(f"{name}: tensor type {GGML_TYPE_NAMES.get(t, t)} is not supported "
                             f"(only F32, F16, Q4_1, Q8_0)")
        n = math.prod(ne)
        per_block, block_bytes = BLOCKS[t]
        if ne[0] % per_block:
            raise ValueError(f"{name}: ne[0]={ne[0]} is not a multiple of the block size {per_block}")
        raw = np.frombuffer(self.data, np.uint8, n // per_block * block_bytes, off)
        if t == 0:
            y = raw.view("<f4").astype(np.float64)
        elif t == 1:
            y = raw.view("<f2").astype(np.float64)
        else:
            blocks = raw.reshape(-1, block_bytes)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float64)  # [n_blocks, 1]
            if t == 3:  # Q4_1: f16 d, f16 m, 16 bytes: low nibbles are elements 0..15, high nibbles 16..31
                m = blocks[:, 2:4].copy().view("<f2").astype(np.float64)
                qs = blocks[:, 4:]
                q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)
                y = q * d + m
            else:  # Q8_0: f16 d, 32 int8
                y = blocks[:, 2:].view(np.int8).astype(np.float64) * d
        return y.reshape(ne[::-1]).astype(dtype)


def build_tokenizer(meta):
    """The GGUF's byte-level BPE as a `tokenizers.Tokenizer` (llama.cpp's "gpt2" model, "smollm" pre-tokenizer:
    single digits split off, then GPT-2's byte-level regex split); control tokens (type 3) are special."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    return tok


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, base, n_rot, mode):
    """Rotate the first n_rot dims of x [positions, heads, head_dim] by angle pos * base^(-2i/n_rot)."""
    n = x.shape[0]
    freqs = base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
    angles = np.arange(n, dtype=np.float64)[:, None] * freqs[None, :]  # [positions, n_rot/2]
    cos, sin = np.cos(angles)[:, None, :].astype(x.dtype), np.sin(angles)[:, None, :].astype(x.dtype)
    r = x[..., :n_rot]
    if mode == "adjacent":  # pairs (0,1), (2,3), ...
        x0, x1 = r[..., 0::2], r[..., 1::2]
        out = np.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1).reshape(r.shape)
    else:  # "half": pairs (i, i + n_rot/2)
        x0, x1 = r[..., :n_rot // 2], r[..., n_rot // 2:]
        out = np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
    return np.concatenate([out, x[..., n_rot:]], axis=-1)


def forward(g, tokens, dtype=np.float64, rope_mode="adjacent"):
    """Logits [len(tokens), vocab] of the llama model in GGUF `g` over `tokens` (positions 0..n-1)."""
    arch = g.meta["general.architecture"]
    hp = lambda key, default=None: g.meta.get(f"{arch}.{key}", default)
    n_layer, n_head = hp("block_count"), hp("attention.head_count")
    n_kv, eps = hp("attention.head_count_kv", n_head), hp("attention.layer_norm_rms_epsilon")
    base = hp("rope.freq_base", 10000.0)
    embd = g.tensor("token_embd.weight", dtype)
    head_dim = embd.shape[1] // n_head
    n_rot = hp("rope.dimension_count", head_dim)
    n = len(tokens)
    x = embd[np.asarray(tokens)]
    mask = np.triu(np.full((n, n), -np.inf, dtype=dtype), 1)
    for layer in range(n_layer):
        w = lambda name: g.tensor(f"blk.{layer}.{name}.weight", dtype)
        h = rms_norm(x, w("attn_norm"), eps)
        q = rope((h @ w("attn_q").T).reshape(n, n_head, head_dim), base, n_rot, rope_mode)
        k = rope((h @ w("attn_k").T).reshape(n, n_kv, head_dim), base, n_rot, rope_mode)
        v = (h @ w("attn_v").T).reshape(n, n_kv, head_dim)
        k, v = np.repeat(k, n_head // n_kv, axis=1), np.repeat(v, n_head // n_kv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(dtype(head_dim)) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = scores / scores.sum(axis=-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", attn, v).reshape(n, n_head * head_dim) @ w("attn_output").T
        h = rms_norm(x, w("ffn_norm"), eps)
        gate = h @ w("ffn_gate").T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ w("ffn_up").T)) @ w("ffn_down").T
    x = rms_norm(x, g.tensor("output_norm.weight", dtype), eps)
    out = g.tensor("output.weight", dtype) if "output.weight" in g.tensors else embd
    return x @ out.T


def next_token_nll(logits, tokens):
    """-log softmax(logits[i])[tokens[i+1]] for each i < n-1, computed in float64."""
    z = logits[:-1].astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -log_probs[np.arange(len(tokens) - 1), tokens[1:]]


def oracle(g, tokens, dtype=np.float64, logits_mode="none", rope_mode="adjacent"):
    """The JSON-ready reference record for `tokens`."""
    logits = forward(g, tokens, dtype, rope_mode)
    nll = next_token_nll(logits, tokens)
    record = {"tokens": [int(t) for t in tokens], "nll": [float(v) for v in nll],
              "perplexity": float(np.exp(nll.mean())) if len(nll) else None}
    if logits_mode != "none":
        rows = logits if logits_mode == "all" else logits[-1:]
        record["logits"] = [[float(v) for v in row] for row in rows]
    return record


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="comma-separated token ids")
    src.add_argument("--text", help="text to tokenize with the GGUF's BPE")
    ap.add_argument("--out", help="JSON file to write")
    ap.add_argument("--logits", choices=["all", "last", "none"], default="none")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--rope", choices=["adjacent", "half"], default="adjacent")
    ap.add_argument("--generate", type=int, default=0, help="greedy-decode this many tokens and print them")
    args = ap.parse_args()
    dtype = np.dtype(args.dtype).type
    g = Gguf(args.model)
    tok = None
    if args.text is not None:
        tok = build_tokenizer(g.meta)
        tokens = tok.encode(args.text).ids
    else:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    print("tokens:", ",".join(map(str, tokens)), file=sys.stderr)
    start = time.time()
    record = oracle(g, tokens, dtype, args.logits, args.rope)
    print(f"{len(tokens)} tokens, {args.dtype}, rope {args.rope}: perplexity {record['perplexity']}"
          f" ({time.time() - start:.1f} s)", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f)
    if args.generate:
        ids = list(tokens)
        for _ in range(args.generate):
            ids.append(int(np.argmax(forward(g, ids, dtype, args.rope)[-1])))
        new = ids[len(tokens):]
        tok = tok or build_tokenizer(g.meta)
        print("greedy:", ",".join(map(str, new)), repr(tok.decode(new)), file=sys.stderr)


if __name__ == "__main__":
    main()
