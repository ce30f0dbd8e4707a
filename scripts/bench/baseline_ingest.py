#!/usr/bin/env python3
"""Plain-Python baseline for `storytool ingest` throughput: what a short script does with the same books.

Reads every .txt file under BOOKS (UTF-8, Latin-1 fallback), drops a BOM and CRs, splits sentences with a
regular expression, lowercases and counts words with another. No Gutenberg stripping, headings, catalogue
or output files: a lower bound on the work `storytool ingest` does. Prints one JSON line:
{"bytes": N, "seconds": S, "sentences": N, "tokens": N, "mb_per_s": X}.
"""
import collections
import json
import pathlib
import re
import sys
import time

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
WORD = re.compile(r"\w+(?:'\w+)*|\.\.\.|[^\w\s]")


def read(path):
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return len(data), text.lstrip("\ufeff").replace("\r\n", "\n")


def main(books):
    started = time.perf_counter()
    counts = collections.Counter()
    n_bytes = n_sentences = n_tokens = 0
    for path in sorted(pathlib.Path(books).rglob("*.txt")):
        size, text = read(path)
        n_bytes += size
        for paragraph in re.split(r"\n\s*\n", text):
            paragraph = " ".join(paragraph.split())
            if not paragraph:
                continue
            for sentence in SENTENCE_END.split(paragraph):
                words = WORD.findall(sentence.lower())
                n_sentences += 1
                n_tokens += len(words)
                counts.update(words)
    vocabulary = [word for word, _ in counts.most_common(10000)]
    seconds = time.perf_counter() - started
    print(json.dumps({
        "bytes": n_bytes,
        "seconds": round(seconds, 3),
        "sentences": n_sentences,
        "tokens": n_tokens,
        "vocabulary": len(vocabulary),
        "mb_per_s": round(n_bytes / 1e6 / seconds, 2),
    }))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/books")
