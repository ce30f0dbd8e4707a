#!/usr/bin/env python3
"""Benchmark: batch-1 greedy decoding speed of the pretrained language model, storytool against llama.cpp.

Both read the same GGUF (default: SmolLM2-135M-Instruct Q4_1 from scripts/fetch-lm.sh), tokenize the same
prompt (no BOS, as storytool's tokenizer does it), evaluate it in one batch, then write TOKENS tokens
greedily (argmax of the last logits, one token per forward pass with the key/value cache, never stopping
at an end-of-text token). Model loading is excluded; the prompt evaluation and the generation are timed
separately and reported as tokens/s.

- storytool: its example `lm_decode` (`--binary`), run as `BINARY MODEL TOKENS PROMPT`; its last line reads
  `load X s; prompt P tokens in S s (R tokens/s); decode N tokens in T s (D tokens/s)`.
- llama.cpp: llama-cpp-python (`pip install llama-cpp-python`, a CPU build), n_threads 2, n_ctx 512,
  `Llama.eval` on the prompt, then `Llama.eval([token])` per token with the argmax of
  `llama_get_logits_ith(ctx, -1)`, timed in Python around those calls (llama.cpp's own
  `llama_perf_context` figures are reported beside them). llama.cpp computes with the Q4_1 weights as
  stored; storytool dequantizes them to f32 when it loads the model.

Each peer runs in its own process, the two alternating ROUNDS times; the script prints the median tokens/s
of each phase and the ratio storytool/llama.cpp. Run it on an idle machine: llama.cpp's threads (as many as
the cores here) wait for each other by spinning, so another busy process slows it far more than its share
(1-10 decode tokens/s beside a build, against 90 alone); the script warns when the load average is high. On
a busy machine, `chrt -r 1 python3 scripts/bench/lm_decode.py ...` (root; both peers inherit the real-time
class) comes close to an idle one.

    python3 scripts/bench/lm_decode.py [--binary PATH] [--model GGUF] [--tokens 128] [--rounds 3]
        [--prompt TEXT] [--threads 2] [--json FILE] [--llama-only]
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROMPT = "The old lighthouse keeper climbed the stairs"
STATS = re.compile(r"prompt (\d+) tokens in [\d.]+ s \(([\d.]+) tokens/s\); decode (\d+) tokens in [\d.]+ s \(([\d.]+) tokens/s\)")


def llama_worker(model, tokens, prompt, threads):
    import numpy as np
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
    vocab = llm.n_vocab()

    def argmax():
        return int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))))

    llama_cpp.llama_perf_context_reset(llm.ctx)
    start = time.perf_counter()
    llm.eval(ids)
    token = argmax()
    prompt_s = time.perf_counter() - start
    written = []
    start = time.perf_counter()
    for _ in range(tokens):
        written.append(token)
        llm.eval([token])
        token = argmax()
    decode_s = time.perf_counter() - start
    perf = llama_cpp.llama_perf_context(llm.ctx)
    return {"prompt_tokens": len(ids), "prompt_tps": len(ids) / prompt_s, "decode_tps": tokens / decode_s,
            "internal_prompt_tps": perf.n_p_eval / perf.t_p_eval_ms * 1e3 if perf.t_p_eval_ms else None,
            "internal_decode_tps": perf.n_eval / perf.t_eval_ms * 1e3 if perf.t_eval_ms else None,
            "text": prompt + llm.detokenize(written).decode(errors="replace"), "version": llama_cpp.__version__}


def run_llama(args):
    command = [sys.executable, __file__, "--llama-worker", "--model", args.model, "--tokens", str(args.tokens),
               "--prompt", args.prompt, "--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"llama.cpp worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_storytool(args):
    result = subprocess.run([args.binary, args.model, str(args.tokens), args.prompt], capture_output=True, text=True)
    match = STATS.search(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    if result.returncode != 0 or not match:
        sys.exit(f"{args.binary} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return {"prompt_tokens": int(match[1]), "prompt_tps": float(match[2]), "decode_tps": float(match[4]),
            "text": result.stdout.rstrip("\n").rsplit("\n", 1)[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release/examples/lm_decode"))
    parser.add_argument("--model", help="GGUF file (default: the output of scripts/fetch-lm.sh)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens to generate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--llama-only", action="store_true", help="measure llama.cpp alone")
    parser.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.llama_worker:
        print(json.dumps(llama_worker(args.model, args.tokens, args.prompt, args.threads)))
        return
    if args.model is None:
        args.model = subprocess.run([ROOT / "scripts/fetch-lm.sh"], capture_output=True, text=True,
                                    check=True).stdout.strip()
    peers = {"llama.cpp": run_llama} if args.llama_only else {"storytool": run_storytool, "llama.cpp": run_llama}
    runs = {name: [] for name in peers}
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.1f}: the machine is busy, the figures will be low",
              file=sys.stderr)
    for i in range(args.rounds):
        for name, run in peers.items():
            runs[name].append(run(args))
            print(f"round {i + 1} {name}: prompt {runs[name][-1]['prompt_tps']:.1f} tokens/s, "
                  f"decode {runs[name][-1]['decode_tps']:.1f} tokens/s", file=sys.stderr)
    result = {"model": args.model, "tokens": args.tokens, "rounds": args.rounds, "prompt": args.prompt,
              "threads": args.threads, "cores": os.cpu_count(), "load_average": os.getloadavg()[0], "runs": runs}
    last = runs["llama.cpp"][-1]
    print(f"{pathlib.Path(args.model).name}, prompt of {last['prompt_tokens']} tokens, {args.tokens} tokens greedy, "
          f"median of {args.rounds} (llama-cpp-python {last['version']}, {args.threads} threads)")
    for name, values in runs.items():
        medians = {key: statistics.median(run[key] for run in values) for key in ("prompt_tps", "decode_tps")}
        result[name] = medians
        internal = ""
        if name == "llama.cpp":
            internal = (f" (llama.cpp's own timings: prompt "
                        f"{statistics.median(run['internal_prompt_tps'] for run in values):.1f}, decode "
                        f"{statistics.median(run['internal_decode_tps'] for run in values):.1f})")
        print(f"{name:>10}: prompt {medians['prompt_tps']:8.1f} tokens/s, decode {medians['decode_tps']:7.1f} tokens/s{internal}")
    if "storytool" in runs:
        for key in ("prompt_tps", "decode_tps"):
            result[f"ratio_{key}"] = result["storytool"][key] / result["llama.cpp"][key]
        ours, theirs = runs["storytool"][-1], runs["llama.cpp"][-1]
        same = next((i for i, (a, b) in enumerate(zip(ours["text"], theirs["text"])) if a != b),
                    min(len(ours["text"]), len(theirs["text"])))
        result["same_text_chars"] = same
        print(f"storytool/llama.cpp: prompt {result['ratio_prompt_tps']:.2f}x, decode {result['ratio_decode_tps']:.2f}x; "
              f"prompt tokens {ours['prompt_tokens']} vs {theirs['prompt_tokens']}; "
              f"continuations agree on their first {same} characters")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
