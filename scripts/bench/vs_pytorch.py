#!/usr/bin/env python3
"""Benchmark: `storytool train-encoder` against the same skip-thought model in PyTorch, on one CPU.

Both train the uni-skip model of Kiros et al. (2015) on the same corpus (the shared books, ingested here
with no validation books, so no run pays for validation): a GRU encoder reads the current sentence, two GRU
decoders started from its final state write the previous and the next sentence through one shared output
layer with the full softmax, Adam, gradient clipping at 5, batches of sentences of similar length cut at 30
tokens. Sizes: `demo` (vocabulary 10k, words 256, GRU 512, batch 64) and `paper` (vocabulary 20k, words
620, GRU 2400, batch 64). The two tools alternate, ROUNDS times per size, each in its own process, so that
a slow minute on the machine hits both; the script prints the median tokens/s of each, their ratio and
each process's peak resident memory.

Tokens are counted as storytool's `metrics.jsonl` counts them: the real tokens (closing `<eos>` included)
of the current, previous and next sentences of each batch. Each side's rate is taken over the steps after
the first ten (demo size) or over every step (paper size, where ten steps already take minutes).

    python3 scripts/bench/vs_pytorch.py [--sizes demo,paper] [--rounds 2] [--binary PATH] [--python PATH]
                                        [--sampled 1024] [--json FILE] [--device cpu|cuda] [--corpora DIR]

`--device cuda` runs both on the first GPU: storytool with `--device cuda` (a binary built with
`--features cuda`), PyTorch with its model and batches on `cuda:0` (timed after `torch.cuda.synchronize`).
`--corpora DIR` keeps the ingested corpora (`DIR/corpus-10000`, `DIR/corpus-20000`) and reuses them, so the
books are not needed where the corpora already are (the GPU machine: `scripts/gpu-check.sh`).

PyTorch comes from Debian's `python3-torch` (`--python`, default: the first of this interpreter and
/usr/bin/python3 that imports torch). Install `libopenblas0-pthread` first: without it torch's BLAS is the
reference one, about 7x slower. Both sides use every core (torch.set_num_threads(os.cpu_count())).
`--sampled N` also runs storytool with a sampled softmax of N words at each size (no PyTorch peer).
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZES = {
    "demo": {"vocab": 10000, "word": 256, "hidden": 512, "batch": 64, "steps": 30},
    "paper": {"vocab": 20000, "word": 620, "hidden": 2400, "batch": 64, "steps": 10},
}
MAX_TOKENS = 30
WINDOW = 10  # storytool logs every 10 steps


def run_measured(command, env=None):
    """Runs `command`; returns (stdout, peak RSS in MB) or exits with its output on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed ({process.returncode}):\n{stdout}{stderr[-4000:]}")
    return stdout, usage.ru_maxrss / 1024


def storytool_run(binary, corpus, size, steps, sampled, work, device="cpu"):
    out = pathlib.Path(work) / f"run-{time.monotonic_ns()}"
    settings = {
        "encoder.word_dim": size["word"], "encoder.hidden_dim": size["hidden"], "encoder.max_tokens": MAX_TOKENS,
        "encoder.sampled_softmax": sampled, "encoder.train.batch_size": size["batch"],
        "encoder.train.validate_every": 1000000, "encoder.train.checkpoint_every": 1000000,
        "encoder.train.clip_norm": 5.0,
    }
    command = [binary, "train-encoder", "--corpus", corpus, "--out", out, "--steps", str(steps), "--device", device]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    _, rss = run_measured(command)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)
    windows = [line["tokens_per_second"] for line in lines]
    rate = statistics.mean(windows[1:]) if len(windows) > 1 else windows[0]
    return {"tokens_per_s": rate, "peak_rss_mb": rss, "last_loss": lines[-1].get("train_loss")}


def torch_run(python, corpus, size, steps, device="cpu"):
    command = [python, __file__, "--torch-worker", corpus, "--worker-size", json.dumps(size), "--worker-steps",
               str(steps), "--device", device]
    stdout, rss = run_measured(command)
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = rss
    return result


# ---------------------------------------------------------------------------------------------------------
# The PyTorch side (runs in its own process so its memory is measured alone).

def torch_worker(corpus, size, steps, device_name="cpu"):
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(42)
    device = torch.device(device_name)
    on_gpu = device.type == "cuda"

    def synchronize():
        if on_gpu:
            torch.cuda.synchronize()

    train = pathlib.Path(corpus) / "train"
    tokens = np.memmap(train / "tokens.u32", dtype=np.uint32, mode="r")
    sentences = np.fromfile(train / "sentences.u64", dtype=np.uint64).astype(np.int64)
    paragraphs = np.fromfile(train / "paragraphs.u64", dtype=np.uint64).astype(np.int64)
    books = np.fromfile(train / "books.u64", dtype=np.uint64).astype(np.int64)
    # Triples of consecutive sentences inside each book, as storytool's `sentence_triples` makes them.
    current = []
    for book in range(len(books) - 1):
        first, last = paragraphs[books[book]], paragraphs[books[book + 1]]
        current.extend(range(first + 1, last - 1))
    current = np.array(current, dtype=np.int64)
    lengths = np.minimum(sentences[current + 1] - sentences[current], MAX_TOKENS)
    # Batches as storytool's `plan_epoch` cuts them: sorted by length, shuffled within buckets of 20 batches.
    rng = np.random.default_rng(42)
    order = rng.permutation(len(current))
    order = order[np.argsort(lengths[order], kind="stable")]
    batch = size["batch"]
    plan = []
    for start in range(0, len(order), batch * 20):
        bucket = rng.permutation(order[start:start + batch * 20])
        plan.extend(bucket[i:i + batch] for i in range(0, len(bucket), batch))
    rng.shuffle(plan)

    def padded(indices):
        rows = [tokens[sentences[i]:sentences[i + 1]][:MAX_TOKENS].astype(np.int64) for i in indices]
        width = max(len(row) for row in rows) + 1
        ids = np.zeros((len(rows), width), dtype=np.int64)  # <eos> is id 0, and so is padding
        for r, row in enumerate(rows):
            ids[r, :len(row)] = row
        lengths = np.array([len(row) + 1 for row in rows])
        return torch.from_numpy(ids).to(device), torch.from_numpy(lengths).to(device)

    class SkipThought(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(size["vocab"], size["word"])
            self.encoder = nn.GRU(size["word"], size["hidden"], batch_first=True)
            self.decoder_previous = nn.GRU(size["word"], size["hidden"], batch_first=True)
            self.decoder_next = nn.GRU(size["word"], size["hidden"], batch_first=True)
            self.output = nn.Linear(size["hidden"], size["vocab"])

        def decoder_nll(self, decoder, ids, lengths, thought):
            embedded = self.embedding(ids)
            inputs = torch.cat([torch.zeros_like(embedded[:, :1]), embedded[:, :-1]], 1)
            states, _ = decoder(inputs, thought.unsqueeze(0))
            log_probs = torch.log_softmax(self.output(states), 2)
            picked = log_probs.gather(2, ids.unsqueeze(2)).squeeze(2)
            mask = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
            return -(picked * mask).sum(), mask.sum()

        def forward(self, current, current_lengths, previous, previous_lengths, next_, next_lengths):
            states, _ = self.encoder(self.embedding(current))
            thought = states[torch.arange(len(current), device=current.device), current_lengths - 1]
            nll_p, n_p = self.decoder_nll(self.decoder_previous, previous, previous_lengths, thought)
            nll_n, n_n = self.decoder_nll(self.decoder_next, next_, next_lengths, thought)
            return (nll_p + nll_n) / (n_p + n_n)

    model = SkipThought().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = None
    counted = 0
    skip = WINDOW if steps > WINDOW else 0
    for step in range(steps):
        if step == skip:
            synchronize()
            started = time.perf_counter()
            counted = 0
        indices = current[plan[step % len(plan)]]
        c, cl = padded(indices)
        p, pl = padded(indices - 1)
        n, nl = padded(indices + 1)
        loss = model(c, cl, p, pl, n, nl)
        optimizer.zero_grad()
        loss.backward()
        for parameter in model.parameters():  # per tensor, as storytool clips
            torch.nn.utils.clip_grad_norm_([parameter], 5.0)
        optimizer.step()
        counted += int(cl.sum() + pl.sum() + nl.sum())
    synchronize()
    elapsed = time.perf_counter() - started
    print(json.dumps({"tokens_per_s": counted / elapsed, "last_loss": float(loss), "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "device": torch.cuda.get_device_name(device) if on_gpu else "cpu"}))


# ---------------------------------------------------------------------------------------------------------

def find_python(given):
    candidates = [given] if given else [sys.executable, "/usr/bin/python3"]
    for python in candidates:
        if python and subprocess.run([python, "-c", "import torch, numpy"], capture_output=True).returncode == 0:
            return python
    sys.exit(f"no Python with torch and numpy among {candidates}: apt-get install python3-torch libopenblas0-pthread")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--books", default=str(ROOT.parent / "shared/data/books"))
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared/data/books.csv"))
    parser.add_argument("--sizes", default="demo,paper")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sampled", type=int, default=0)
    parser.add_argument("--steps", type=int, help="steps per run instead of the size's default")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release/storytool"))
    parser.add_argument("--python")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--corpora", help="keep and reuse the ingested corpora in this folder")
    parser.add_argument("--torch-worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-size", help=argparse.SUPPRESS)
    parser.add_argument("--worker-steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args.torch_worker, json.loads(args.worker_size), args.worker_steps, args.device)
    if not pathlib.Path(args.binary).is_file():
        sys.exit(f"no storytool binary at {args.binary}: run `cargo build --release` first")
    python = find_python(args.python)
    sizes = [name.strip() for name in args.sizes.split(",")]
    unknown = [name for name in sizes if name not in SIZES]
    if unknown:
        sys.exit(f"unknown size {unknown}: choose from {list(SIZES)}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="storytool-vs-pytorch-") as work:
        for name in sizes:
            size = SIZES[name]
            steps = args.steps or size["steps"]
            corpus = pathlib.Path(args.corpora or work) / f"corpus-{size['vocab']}"
            if not (corpus / "manifest.json").exists():
                run_measured([args.binary, "ingest", "--books", args.books, "--catalog", args.catalog, "--out",
                              corpus, "--valid-books", "0", "--set", f"corpus.vocab_size={size['vocab']}"])
            runs = {"storytool": [], "pytorch": []}
            if args.sampled:
                runs[f"storytool sampled {args.sampled}"] = []
            for round_ in range(args.rounds):
                print(f"{name}: round {round_ + 1} of {args.rounds}", file=sys.stderr, flush=True)
                runs["storytool"].append(storytool_run(args.binary, corpus, size, steps, 0, work, args.device))
                runs["pytorch"].append(torch_run(python, corpus, size, steps, args.device))
                if args.sampled:
                    runs[f"storytool sampled {args.sampled}"].append(
                        storytool_run(args.binary, corpus, size, steps, args.sampled, work, args.device))
            summary = {tool: {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                              "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                              "runs": [round(r["tokens_per_s"], 1) for r in rs]} for tool, rs in runs.items()}
            summary["ratio"] = summary["storytool"]["tokens_per_s"] / summary["pytorch"]["tokens_per_s"]
            summary["torch"] = runs["pytorch"][0]["torch"]
            summary["device"] = runs["pytorch"][0]["device"]
            summary["steps"] = steps
            results[name] = summary

    cores = os.cpu_count()
    print(f"{next(iter(results.values()))['device']}; {cores} cores; PyTorch {next(iter(results.values()))['torch']}; median of {args.rounds} alternating rounds")
    print(f"{'size':<7} {'tool':<26} {'tokens/s':>9} {'peak RSS MB':>12}  runs")
    for name, summary in results.items():
        for tool, figures in summary.items():
            if isinstance(figures, dict):
                print(f"{name:<7} {tool:<26} {figures['tokens_per_s']:>9.1f} {figures['peak_rss_mb']:>12.0f}  "
                      f"{figures['runs']}")
        print(f"{name:<7} {'storytool / pytorch':<26} {summary['ratio']:>8.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
