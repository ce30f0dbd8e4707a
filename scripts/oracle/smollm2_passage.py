#!/usr/bin/env python3
"""Reference outputs of the real SmolLM2-135M-Instruct Q4_1 GGUF on a fixed passage, for storytool's LM tests.

    scripts/fetch-lm.sh
    python3 scripts/oracle/smollm2_passage.py [MODEL.gguf]   # -> tests/fixtures/lm/smollm2-passage.json

Runs scripts/oracle/llama_gguf.py's float64 forward pass over the opening of Pride and Prejudice (Jane Austen,
1813, public domain), tokenized with the `tokenizers` package from the GGUF's own vocabulary and merges, and
writes the token ids, per-position next-token nll, perplexity and the logits at the last position rounded to
5 significant digits, plus the greedy continuation of "The capital of France is" (" Paris").
"""

import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_gguf  # noqa: E402

DEFAULT_MODEL = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "storytool",
                             "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "lm",
                   "smollm2-passage.json")
TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
        "want of a wife. However little known the feelings or views of such a man may be on his first entering a "
        "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
        "considered the rightful property of some one or other of their daughters.")
PROMPT, GREEDY_STEPS = "The capital of France is", 3


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    g = llama_gguf.Gguf(path)
    tok = llama_gguf.build_tokenizer(g.meta)
    tokens = tok.encode(TEXT).ids
    start = time.time()
    logits = llama_gguf.forward(g, tokens, np.float64)
    seconds = time.time() - start
    nll = llama_gguf.next_token_nll(logits, tokens)
    ids = tok.encode(PROMPT).ids
    prompt_ids = list(ids)
    for _ in range(GREEDY_STEPS):
        ids.append(int(np.argmax(llama_gguf.forward(g, ids, np.float64)[-1])))
    record = {
        "model": os.path.basename(path),
        "model_sha256": hashlib.sha256(g.data).hexdigest(),
        "dtype": "float64",
        "source": "Jane Austen, Pride and Prejudice (1813), opening sentences",
        "text": TEXT,
        "tokens": tokens,
        "nll": [float(v) for v in nll],
        "perplexity": float(np.exp(nll.mean())),
        "logits_position": len(tokens) - 1,
        "logits_last": [float(f"{v:.5g}") for v in logits[-1]],
        "argmax_last": int(np.argmax(logits[-1])),
        "greedy": {"text": PROMPT, "tokens": prompt_ids, "next_tokens": ids[len(prompt_ids):],
                   "continuation": tok.decode(ids[len(prompt_ids):])},
    }
    with open(OUT, "w") as f:
        json.dump(record, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(tokens)} tokens, perplexity {record['perplexity']:.4f}, forward {seconds:.1f} s, "
          f"greedy {record['greedy']['continuation']!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
