#!/usr/bin/python3
"""Build the multiple-choice tasks of `qforge-run eval` from the held-out text (val.txt),
reproducibly (a fixed seed; Python's own random module; no downloads):

  tasks/next_sentence.jsonl  the context is one to three sentences of a paragraph; the
                             choices are the sentence that follows and three sentences of
                             about its length (±10%) from other documents (a stand-in for
                             HellaSwag-style continuation choice)
  tasks/cloze.jsonl          the context is a paragraph up to a capitalized word inside a
                             sentence (a name or a place, mostly); the choices are that word
                             and three capitalized words of other documents (LAMBADA-like)

Each line: {"context": text, "choices": [text, ...], "gold": index}; ITEMS (300) items per
task. Usage: /usr/bin/python3 models/data/make_tasks.py [--items 300] [--seed 0]
"""
import argparse
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
WORD = re.compile(r"(?<=[a-z,;] )([A-Z][a-z]{3,})\b")


def paragraphs():
    """(document index, paragraph) for every paragraph of val.txt. Documents are separated
    by a blank line; a paragraph is a line."""
    with open(os.path.join(HERE, "val.txt"), encoding="utf-8") as fh:
        docs = fh.read().split("\n\n")
    for d, doc in enumerate(docs):
        for line in doc.split("\n"):
            line = re.sub(r"^\d+ ", "", line.strip())  # a Bible verse number
            if len(line) > 40:
                yield d, line


def next_sentence(rng, items):
    sentences = []  # (doc, paragraph index, index in paragraph, sentence)
    paras = list(paragraphs())
    for p, (d, line) in enumerate(paras):
        for i, s in enumerate(SENTENCE_END.split(line)):
            sentences.append((d, p, i, s))
    by_para = {}
    for d, p, i, s in sentences:
        by_para.setdefault(p, []).append(s)
    candidates = [(d, p, i, s) for d, p, i, s in sentences
                  if i >= 1 and 30 <= len(s) <= 160]
    rng.shuffle(candidates)
    out = []
    for d, p, i, s in candidates:
        context = " ".join(by_para[p][max(0, i - 3):i])[-200:]
        others = [t for e, _, _, t in sentences
                  if e != d and 0.9 * len(s) <= len(t) <= 1.1 * len(s)]
        if len(context) < 30 or len(others) < 3:
            continue
        choices = [" " + s] + [" " + t for t in rng.sample(others, 3)]
        rng.shuffle(choices)
        out.append({"context": context, "choices": choices, "gold": choices.index(" " + s)})
        if len(out) == items:
            break
    return out


def cloze(rng, items):
    words = []  # (doc, paragraph, match)
    paras = list(paragraphs())
    for p, (d, line) in enumerate(paras):
        for m in WORD.finditer(line):
            words.append((d, p, m))
    rng.shuffle(words)
    vocab = {}
    for d, _, m in words:
        vocab.setdefault(m.group(1), set()).add(d)
    out = []
    for d, p, m in words:
        word = m.group(1)
        line = paras[p][1]
        context = line[:m.start()][-200:]
        others = sorted(w for w, docs in vocab.items() if w != word and d not in docs)
        if len(context) < 40 or len(others) < 3:
            continue
        choices = [word] + rng.sample(others, 3)
        rng.shuffle(choices)
        out.append({"context": context, "choices": choices, "gold": choices.index(word)})
        if len(out) == items:
            break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(os.path.join(HERE, "tasks"), exist_ok=True)
    for name, make in (("next_sentence", next_sentence), ("cloze", cloze)):
        items = make(random.Random(a.seed), a.items)
        path = os.path.join(HERE, "tasks", name + ".jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{path}: {len(items)} items")


if __name__ == "__main__":
    main()
