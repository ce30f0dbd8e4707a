#!/usr/bin/env python3
"""Writes a tiny random llama GGUF and its reference outputs, for storytool's LM unit tests.

    python3 scripts/oracle/tiny_llama_gguf.py     # -> tests/fixtures/lm/tiny-llama.gguf, tiny-llama.oracle.json

The model mirrors SmolLM2-135M-Instruct's GGUF (same metadata key names and value types, same tensor names)
at toy size: width 64, 2 blocks, 4 query heads / 2 kv heads (head size 16), feed-forward 128, RoPE base 10000,
RMSNorm eps 1e-5, output tied to token_embd. Tensor types are mixed so that every reader path is exercised:
token_embd Q8_0, blk.0 matrices Q4_1, blk.1 attn_q/attn_k F16 and its other matrices Q4_1, norms F32.
The vocabulary is byte-level BPE like SmolLM2's: control tokens <|endoftext|>, <|im_start|>, <|im_end|> at
ids 0..2 (token_type 3), the 256 GPT-2 byte characters (bytes_to_unicode, byte order) at ids 3..258, then one
token per merge in MERGES order. Weights are numpy-seeded, so the file is byte-for-byte reproducible; q/k are
scaled up so attention is sharp and RoPE/grouped-query mistakes change the logits a lot.

The oracle JSON holds the float64 forward pass of scripts/oracle/llama_gguf.py (run on the written file) over
a fixed token sequence: tokens, nll, perplexity, logits (every position, full vocabulary, repr floats), plus
sample texts and the ids that the `tokenizers` package gives for them with this tokenizer.
"""

import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_gguf  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "lm")
WIDTH, BLOCKS, HEADS, KV_HEADS, FFN, CONTEXT = 64, 2, 4, 2, 128, 128
HEAD_DIM = WIDTH // HEADS
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "a t", "Ġ s", "Ġ i", "Ġ o", "Ġ c", "Ġ m",
          "a n", "Ġa n", "Ġan d", "Ġi s", "Ġc at", "Ġs at", "Ġo n", "Ġm at", "T he"]
TEXT = "The cat sat on the mat. 42 is 4 and 2."
EXTRA_TEXTS = ["<|im_start|>user\nthe thin theatre<|im_end|>", "naïve café — 2024, ünïcödé 😀!", "  two  spaces\n\n"]
# GGUF metadata value types.
U32, F32, BOOL, STR, ARR, I32 = 4, 6, 7, 8, 9, 5


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def pack_value(vtype, value, etype=None):
    if vtype == STR:
        raw = value.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw
    if vtype == ARR:
        return struct.pack("<IQ", etype, len(value)) + b"".join(pack_value(etype, v) for v in value)
    return struct.pack(llama_gguf.SCALAR_FORMATS[vtype], value)


def quantize(x, ggml_type):
    """Raw bytes of float array x [rows, cols] in ggml type 0 (F32), 1 (F16), 3 (Q4_1) or 8 (Q8_0)."""
    if ggml_type == 0:
        return x.astype("<f4").tobytes()
    if ggml_type == 1:
        return x.astype("<f2").tobytes()
    blocks = x.reshape(-1, 32)
    if ggml_type == 8:
        d = (np.abs(blocks).max(axis=1, keepdims=True) / 127).astype("<f2")
        q = np.clip(np.round(blocks / np.where(d == 0, 1, d.astype(np.float64))), -127, 127).astype(np.int8)
        return b"".join(dd.tobytes() + qq.tobytes() for dd, qq in zip(d, q))
    lo, hi = blocks.min(axis=1, keepdims=True), blocks.max(axis=1, keepdims=True)
    d, m = ((hi - lo) / 15).astype("<f2"), lo.astype("<f2")
    q = np.clip(np.round((blocks - m) / np.where(d == 0, 1, d.astype(np.float64))), 0, 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return b"".join(dd.tobytes() + mm.tobytes() + qq.tobytes() for dd, mm, qq in zip(d, m, qs))


def write_gguf(path, metadata, tensors, alignment=32):
    """metadata: [(key, type, value[, element type])]; tensors: [(name, float array, ggml type)]."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, vtype, value, *etype in metadata:
        out += pack_value(STR, key) + struct.pack("<I", vtype) + pack_value(vtype, value, *etype)
    blobs, offset = [], 0
    for name, array, ggml_type in tensors:
        ne = list(array.shape[::-1])
        out += pack_value(STR, name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        out += struct.pack("<IQ", ggml_type, offset)
        blob = quantize(array, ggml_type)
        blob += b"\0" * (-len(blob) % alignment)
        blobs.append(blob)
        offset += len(blob)
    out += b"\0" * (-len(out) % alignment)
    with open(path, "wb") as f:
        f.write(bytes(out) + b"".join(blobs))


def main():
    rng = np.random.default_rng(20240607)
    byte_chars = bytes_to_unicode()
    tokens = CONTROL + [byte_chars[b] for b in range(256)] + [m.replace(" ", "") for m in MERGES]
    assert len(set(tokens)) == len(tokens)
    token_type = [3] * len(CONTROL) + [1] * (len(tokens) - len(CONTROL))
    vocab = len(tokens)
    real_template = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
                     "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                     "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                     "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                     "}}{% endif %}")
    metadata = [
        ("general.architecture", STR, "llama"), ("general.type", STR, "model"),
        ("general.name", STR, "storytool tiny llama (random weights)"), ("general.alignment", U32, 32),
        ("llama.block_count", U32, BLOCKS), ("llama.context_length", U32, CONTEXT),
        ("llama.embedding_length", U32, WIDTH), ("llama.feed_forward_length", U32, FFN),
        ("llama.attention.head_count", U32, HEADS), ("llama.attention.head_count_kv", U32, KV_HEADS),
        ("llama.rope.freq_base", F32, 10000.0), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("general.file_type", U32, 3), ("llama.vocab_size", U32, vocab), ("llama.rope.dimension_count", U32, HEAD_DIM),
        ("tokenizer.ggml.add_space_prefix", BOOL, False), ("tokenizer.ggml.add_bos_token", BOOL, False),
        ("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "smollm"),
        ("tokenizer.ggml.tokens", ARR, tokens, STR), ("tokenizer.ggml.token_type", ARR, token_type, I32),
        ("tokenizer.ggml.merges", ARR, MERGES, STR), ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2), ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.padding_token_id", U32, 2), ("tokenizer.chat_template", STR, real_template),
        ("general.quantization_version", U32, 2),
    ]
    matrix = lambda rows, cols, scale: rng.standard_normal((rows, cols)) * scale
    norm = lambda: 1 + 0.1 * rng.standard_normal(WIDTH)
    kv = KV_HEADS * HEAD_DIM
    tensors = [("token_embd.weight", matrix(vocab, WIDTH, 0.2), 8)]
    for b in range(BLOCKS):
        qk_type = 3 if b == 0 else 1
        p = f"blk.{b}."
        tensors += [(p + "attn_norm.weight", norm(), 0),
                    (p + "attn_q.weight", matrix(WIDTH, WIDTH, 0.25), qk_type),
                    (p + "attn_k.weight", matrix(kv, WIDTH, 0.25), qk_type),
                    (p + "attn_v.weight", matrix(kv, WIDTH, 0.15), 3),
                    (p + "attn_output.weight", matrix(WIDTH, WIDTH, 0.1), 3),
                    (p + "ffn_norm.weight", norm(), 0),
                    (p + "ffn_gate.weight", matrix(FFN, WIDTH, 0.15), 3),
                    (p + "ffn_up.weight", matrix(FFN, WIDTH, 0.15), 3),
                    (p + "ffn_down.weight", matrix(WIDTH, FFN, 0.1), 3)]
    tensors.append(("output_norm.weight", norm(), 0))
    os.makedirs(OUT_DIR, exist_ok=True)
    gguf_path = os.path.join(OUT_DIR, "tiny-llama.gguf")
    write_gguf(gguf_path, metadata, tensors)

    # Read it back with the oracle's reader: metadata must round-trip (f32 values through float32) and each
    # tensor must dequantise to within its quantisation step of the random weights.
    g = llama_gguf.Gguf(gguf_path)
    for key, vtype, value, *etype in metadata:
        assert g.meta_types[key] == ((vtype, *etype) if etype else vtype), key
        assert g.meta[key] == (float(np.float32(value)) if vtype == F32 else value), key
    for name, array, ggml_type in tensors:
        step = {0: 1e-6, 1: 1e-2, 3: 0.2, 8: 0.02}[ggml_type]
        assert np.abs(g.tensor(name) - array).max() <= step * max(1, np.abs(array).max()), name

    tok = llama_gguf.build_tokenizer(g.meta)
    text_tokens = tok.encode(TEXT).ids
    sequence = [1] + text_tokens[:10] + [vocab - 1]
    record = llama_gguf.oracle(g, sequence, np.float64, "all")
    record = {"model": "tiny-llama.gguf", "dtype": "float64", "vocab_size": vocab, **record, "text": TEXT,
              "text_tokens": text_tokens,
              "extra_texts": [{"text": t, "tokens": tok.encode(t).ids} for t in EXTRA_TEXTS]}
    for extra in record["extra_texts"]:
        assert tok.decode(extra["tokens"], skip_special_tokens=False) == extra["text"], extra
    with open(os.path.join(OUT_DIR, "tiny-llama.oracle.json"), "w") as f:
        json.dump(record, f)
        f.write("\n")
    print(f"vocab {vocab}, sequence {sequence}, perplexity {record['perplexity']}", file=sys.stderr)
    print(f"text tokens {text_tokens} {[tok.id_to_token(i) for i in text_tokens]}", file=sys.stderr)


if __name__ == "__main__":
    main()
