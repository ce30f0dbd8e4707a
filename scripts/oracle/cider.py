#!/usr/bin/env python3
"""Reference figures for storytool's CIDEr-D (src/captioner/cider.rs), from the COCO caption evaluation code.

Scores a fixed set of hypotheses and references with `pycocoevalcap`'s `Cider` (the scorer the COCO
leaderboard used) and writes them, with the sentences, to tests/fixtures/cider_reference.json, which the
Rust unit test compares with to 1e-9. Sentences are lowercase words without punctuation, so that
pycocoevalcap's whitespace split and storytool's tokenizer see the same words.

    python3 -m venv ~/.cache/storytool/pyenv
    ~/.cache/storytool/pyenv/bin/pip install numpy pycocoevalcap==1.2
    ~/.cache/storytool/pyenv/bin/python scripts/oracle/cider.py > tests/fixtures/cider_reference.json
"""

import json
import sys

from pycocoevalcap.cider.cider import Cider

# (hypothesis, references): repeated words, a one-word hypothesis, a hypothesis longer than its
# references, n-grams shared across photos, and photos with different numbers of references.
PHOTOS = [
    ("a dog runs on the grass", ["a dog is running on the grass", "a brown dog runs across a lawn", "the dog plays outside"]),
    ("a man rides a horse on the beach", ["a man riding a horse along the beach", "a person on a horse near the sea"]),
    ("two cats two cats on a sofa", ["two cats sleep on a sofa", "a pair of cats lying on a couch", "cats on the sofa", "two kittens resting"]),
    ("a plate", ["a plate of food on a table", "a white plate with a sandwich and chips"]),
    ("a group of people standing in the water near the shore of a lake on a sunny day",
     ["people standing on the shore next to a body of water", "a group of people at the lake"]),
    ("a red bus on the street", ["a red double decker bus drives down the street", "a bus on a city street", "a red bus"]),
    ("a man on the grass", ["a man lies on the grass", "a man in a park"]),
]


def main():
    gts = {index: refs for index, (_, refs) in enumerate(PHOTOS)}
    res = {index: [hypothesis] for index, (hypothesis, _) in enumerate(PHOTOS)}
    corpus, photos = Cider().compute_score(gts, res)
    json.dump(
        {
            "source": "pycocoevalcap 1.2, pycocoevalcap.cider.cider.Cider (CIDEr-D, n 4, sigma 6)",
            "hypotheses": [hypothesis for hypothesis, _ in PHOTOS],
            "references": [refs for _, refs in PHOTOS],
            "corpus": float(corpus),
            "photos": [float(score) for score in photos],
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
