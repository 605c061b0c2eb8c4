#!/usr/bin/env python3
"""Trains the demo's byte-level BPE tokenizer (GPT-2 format) and writes a golden file for zoff's loader.

Learns NUM_MERGES merges on configs/data/sentiment/corpus.txt plus the texts of train.jsonl
(prompts and candidates), with GPT-2's pre-tokenization and byte-to-unicode map, and writes
configs/data/sentiment/tokenizer/{vocab.json, merges.txt, tokenizer_config.json}. Then encodes
a few texts with its own encoder (GPT-2's encoder.py algorithm) into
tests/dataset/golden_demo_tokens.json, which zoff's C++ tokenizer must reproduce.
Deterministic (ties between equally frequent pairs go to the smallest pair). Stdlib only.
Usage: python3 scripts/train_demo_bpe.py
"""
import collections
import json
import os
import unicodedata

NUM_MERGES = 1500
SPECIALS = ["<pad>", "<|endoftext|>"]  # ids 0 and 1; the 256 byte tokens follow, then merges

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "configs", "data", "sentiment")
TOKENIZER = os.path.join(DATA, "tokenizer")
GOLDEN = os.path.join(ROOT, "tests", "dataset", "golden_demo_tokens.json")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_SYM = bytes_to_unicode()
WHITE_SPACE = set([0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000] +
                  list(range(0x09, 0x0E)) + list(range(0x2000, 0x200B)))


def cls(ch):
    if ord(ch) in WHITE_SPACE:
        return "s"
    c = unicodedata.category(ch)[0]
    return c if c in "LN" else "o"


def pre_tokenize(text):
    """GPT-2's 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+, by hand."""
    k = [cls(ch) for ch in text]
    n = len(text)
    out, i = [], 0

    def run(j, c):
        while j < n and k[j] == c:
            j += 1
        return j

    while i < n:
        end = 0
        if text[i] == "'" and i + 1 < n:
            if text[i + 1] in "stmd":
                end = i + 2
            elif text[i + 1:i + 3] in ("re", "ve", "ll"):
                end = i + 3
        if not end:
            j = i + 1 if text[i] == " " else i
            if j < n and k[j] in "LNo":
                end = run(j, k[j])
            else:  # whitespace: \s+(?!\S) then \s+
                j = run(i, "s")
                end = j if j == n or j - 1 == i else j - 1
        out.append(text[i:end])
        i = end
    return out


def word_symbols(word):
    return tuple(BYTE_SYM[b] for b in word.encode("utf-8"))


def train_texts():
    texts = []
    with open(os.path.join(DATA, "corpus.txt"), encoding="utf-8") as f:
        texts += [line.rstrip("\n") for line in f if line.strip()]
    with open(os.path.join(DATA, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            texts.append(rec["prompt"] + rec["candidates"][rec["label"]])
    return texts


def train(texts):
    freq = collections.Counter()
    for t in texts:
        for w in pre_tokenize(t):
            freq[word_symbols(w)] += 1
    words = [list(w) for w in freq]
    counts = [freq[w] for w in freq]
    merges = []
    while len(merges) < NUM_MERGES:
        pairs = collections.Counter()
        for w, c in zip(words, counts):
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        a, b = best
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    return merges


def bpe(symbols, ranks):
    """GPT-2 encoder.py: merge the lowest-ranked adjacent pair everywhere, until none is left."""
    word = list(symbols)
    while len(word) > 1:
        pairs = set(zip(word, word[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


def encode(text, vocab, ranks):
    ids, rest = [], text
    while rest:  # special tokens first, leftmost (then longest) match
        hits = [(rest.find(s), -len(s), s) for s in SPECIALS if s in rest]
        if not hits:
            seg, special, rest = rest, None, ""
        else:
            pos, _, special = min(hits)
            seg, rest = rest[:pos], rest[pos + len(special):]
        for w in pre_tokenize(seg):
            ids += [vocab[s] for s in bpe(word_symbols(w), ranks)]
        if special:
            ids.append(vocab[special])
    return ids


def main():
    merges = train(train_texts())
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[BYTE_SYM[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    os.makedirs(TOKENIZER, exist_ok=True)
    with open(os.path.join(TOKENIZER, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(TOKENIZER, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"add_bos_token": True, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
              "pad_token": "<pad>", "unk_token": None, "model_max_length": 256,
              "tokenizer_class": "GPT2Tokenizer"}
    with open(os.path.join(TOKENIZER, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    ranks = {m: i for i, m in enumerate(merges)}
    cases = []
    with open(os.path.join(DATA, "test.jsonl"), encoding="utf-8") as f:
        for line in list(f)[:6]:
            rec = json.loads(line)
            cases += [rec["prompt"], rec["prompt"] + rec["candidates"][rec["label"]]]
    cases += [
        "That was great. Sentiment: positive",
        "  two  spaces, trailing   \n\nnew lines\tand a tab ",
        "Rated 10/10, 5 stars!!! Would buy again...",
        "I'm sure it's fine; they'll see we've done what I'd said.",
        "Caf\u00e9 cr\u00e8me, na\u00efve \u00fcber \u2014 \u65e5\u672c\u8a9e \U0001F600",
        "good<|endoftext|>bad<pad><pad>",
        "",
    ]
    golden = {"tokenizer": "configs/data/sentiment/tokenizer",
              "generator": "scripts/train_demo_bpe.py",
              "vocab_size": len(vocab),
              "cases": [{"text": t, "ids": encode(t, vocab, ranks)} for t in cases]}
    with open(GOLDEN, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(merges)} merges, vocab {len(vocab)}; wrote {TOKENIZER} and {GOLDEN}")


if __name__ == "__main__":
    main()
