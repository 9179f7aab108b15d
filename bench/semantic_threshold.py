"""The semantic cache's threshold against a real embedding model: for each
threshold, the share of the corpus's light rewordings, paraphrases and near
misses (same words, another meaning) whose cosine similarity to their
original reaches it — what the cache would serve. all-MiniLM-L6-v2
(tests/fake_llm/embedding.py) on tests/semantic/corpus.jsonl; run by
bench/semantic_cache.sh, which builds the Python environment.
"""
import json
import os
import sys

import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(root, "tests", "fake_llm"))
from embedding import MiniLM  # noqa: E402

model = MiniLM()
kinds = {"variants": [], "paraphrases": [], "near_misses": []}
closest = []
for line in open(os.path.join(root, "tests", "semantic", "corpus.jsonl")):
    group = json.loads(line)
    original = model.encode_one(group["original"])[0]
    for kind, scores in kinds.items():
        for text in group[kind]:
            similarity = float(np.dot(original, model.encode_one(text)[0]))
            scores.append(similarity)
            if kind == "near_misses":
                closest.append((similarity, group["original"], text))
print("| threshold | rewordings served | paraphrases served | near misses served (false hits) |")
print("|---|---|---|---|")
for t in (0.80, 0.85, 0.90, 0.92, 0.95, 0.97):
    row = [f"{t:.2f}"]
    for kind in ("variants", "paraphrases", "near_misses"):
        scores = kinds[kind]
        n = sum(s >= t for s in scores)
        row.append(f"{n}/{len(scores)} ({100 * n / len(scores):.0f} %)")
    print("| " + " | ".join(row) + " |")
closest.sort(reverse=True)
print()
print("closest near misses:")
for similarity, original, text in closest[:3]:
    print(f"  {similarity:.3f}  {original!r} ~ {text!r}")
