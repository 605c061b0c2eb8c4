#!/usr/bin/env python3
"""Generates the demo sentiment task in configs/data/sentiment/ from templates and word lists.

Writes train.jsonl (400 reviews), test.jsonl (100 reviews, none of them in train) in zoff's
classification format, and corpus.txt (plain English text in the same style, with inline
sentiment labels, for pre-training a tiny model; no train or test review appears in it).
Deterministic: a fixed seed and Python's random.Random, whose algorithms are stable across
Python 3 versions. Stdlib only. Usage: python3 scripts/gen_demo_data.py [out_dir]
"""
import json
import os
import random
import sys

SEED = 20240601
N_TRAIN_PER_LABEL = 200
N_TEST_PER_LABEL = 50
CORPUS_TARGET_BYTES = 110_000
PROMPT = "Review: {}\nSentiment:"
CANDIDATES = [" negative", " positive"]

MOVIES = ["movie", "film", "plot", "story", "script", "cast", "soundtrack", "ending", "sequel",
          "documentary", "series", "finale", "comedy", "thriller", "cartoon", "musical", "drama",
          "romance", "western", "horror film", "mystery", "biopic", "miniseries", "episode",
          "trailer", "performance", "villain", "dialogue", "animation", "remake"]
PRODUCTS = ["blender", "phone", "laptop", "headset", "coffee maker", "backpack", "vacuum",
            "keyboard", "camera", "chair", "lamp", "kettle", "toaster", "jacket", "charger",
            "tablet", "speaker", "mattress", "watch", "umbrella", "printer", "bicycle",
            "toothbrush", "monitor", "router", "scooter", "sofa", "desk", "fridge", "microwave",
            "drill", "tent", "suitcase", "wallet", "sweater", "helmet", "guitar", "radio",
            "thermos", "notebook", "stroller", "heater", "mixer", "grill"]
PLACES = ["restaurant", "hotel", "cafe", "pizza", "pasta", "burger", "service", "bakery", "hostel",
          "diner", "steakhouse", "buffet", "salad", "soup", "sushi", "dessert", "breakfast", "spa"]

POS_ADJ = ["wonderful", "excellent", "fantastic", "great", "brilliant", "delightful", "superb",
           "amazing", "lovely", "charming", "impressive", "outstanding", "enjoyable", "beautiful",
           "solid", "reliable", "pleasant", "perfect", "terrific", "marvelous", "good", "fun",
           "stunning", "gorgeous", "thoughtful", "heartwarming", "sturdy", "comfortable", "elegant",
           "smooth", "clever", "inspiring", "refreshing", "satisfying", "cozy", "flawless",
           "exceptional", "splendid", "fabulous", "magnificent", "joyful", "dependable", "handy"]
NEG_ADJ = ["terrible", "awful", "boring", "dull", "disappointing", "horrible", "poor", "weak",
           "bland", "clumsy", "flimsy", "useless", "annoying", "mediocre", "tedious", "cheap",
           "frustrating", "ugly", "noisy", "dreadful", "bad", "forgettable", "pathetic", "clunky",
           "sluggish", "lousy", "shoddy", "messy", "overpriced", "unbearable", "pointless",
           "confusing", "miserable", "dreary", "faulty", "greasy", "stale", "tasteless",
           "unreliable", "irritating", "lifeless", "shallow", "painful"]
INTENS = ["very", "really", "truly", "absolutely", "incredibly", "remarkably", "quite",
          "extremely", "genuinely", "so"]
POS_VERB = ["loved", "adored", "really enjoyed", "was thrilled with", "was happy with", "liked"]
NEG_VERB = ["hated", "disliked", "regretted buying", "was annoyed by", "was unhappy with",
            "could not stand"]
WHO = ["My sister", "My friend", "A coworker", "My dad", "My neighbor", "Our teacher"]
WHEN = ["last week", "yesterday", "on Sunday", "over the holidays", "this morning", "last month"]


def a_or_an(word):
    return "an" if word[0] in "aeiou" else "a"


def positive(r, obj, kind):
    adj, adj2 = r.sample(POS_ADJ, 2)
    it = r.choice(INTENS)
    t = r.randrange(12)
    if t == 0:
        return f"The {obj} was {it} {adj}."
    if t == 1:
        return f"I {r.choice(POS_VERB)} this {obj}."
    if t == 2:
        return f"What {a_or_an(adj)} {adj} {obj}!"
    if t == 3:
        return f"This {obj} is {adj} and {adj2}."
    if t == 4:
        it4 = r.choice([w for w in INTENS if w != "so"])
        return f"{a_or_an(it4).capitalize()} {it4} {adj} {obj}, I would recommend it to anyone."
    if t == 5:
        if kind == "movie":
            return f"The {obj} kept me {r.choice(['smiling', 'hooked', 'laughing', 'happy'])} the whole time."
        if kind == "product":
            return f"The {obj} works {r.choice(['perfectly', 'beautifully', 'great', 'like a charm'])}."
        return f"The {obj} was {r.choice(['delicious', 'fresh', 'friendly', 'fast'])} and {adj}."
    if t == 6:
        return f"Best {obj} I have {'seen' if kind == 'movie' else 'tried'} in years."
    if t == 7:
        return f"{r.choice(WHO)} got me this {obj} {r.choice(WHEN)} and it is {adj}."
    if t == 8:
        return f"The {obj} was never {r.choice(NEG_ADJ)}."
    if t == 9:
        return f"There was nothing {r.choice(NEG_ADJ)} about the {obj}."
    if t == 10:
        return f"I would happily {'watch' if kind == 'movie' else 'buy'} this {obj} again, it was {adj}."
    return f"Such {a_or_an(adj)} {adj} {obj}, {it} {adj2}."


def negative(r, obj, kind):
    adj, adj2 = r.sample(NEG_ADJ, 2)
    it = r.choice(INTENS)
    t = r.randrange(12)
    if t == 0:
        return f"The {obj} was {it} {adj}."
    if t == 1:
        return f"I {r.choice(NEG_VERB)} this {obj}."
    if t == 2:
        return f"What {a_or_an(adj)} {adj} {obj}."
    if t == 3:
        return f"This {obj} is {adj} and {adj2}."
    if t == 4:
        return f"Do not waste your money on this {obj}, it is {adj}."
    if t == 5:
        if kind == "movie":
            return f"I walked out halfway through the {obj}, it was {adj}."
        if kind == "product":
            return f"The {obj} broke after {r.choice(['two days', 'a week', 'one use', 'an hour'])}."
        return f"The {obj} was {r.choice(['cold', 'stale', 'rude', 'slow'])} and {adj}."
    if t == 6:
        return f"Worst {obj} I have {'seen' if kind == 'movie' else 'tried'} in years."
    if t == 7:
        return f"{r.choice(WHO)} got me this {obj} {r.choice(WHEN)} and it is {adj}."
    if t == 8:
        return f"The {obj} was not {r.choice(POS_ADJ)} at all."
    if t == 9:
        return f"I would not call this {obj} {r.choice(POS_ADJ)}."
    if t == 10:
        return f"I will never {'watch' if kind == 'movie' else 'buy'} this {obj} again, it was {adj}."
    return f"Such {a_or_an(adj)} {adj} {obj}, {it} {adj2}."


def review(r, label):
    kind = r.choice(["movie", "movie", "product", "product", "place"])
    obj = r.choice({"movie": MOVIES, "product": PRODUCTS, "place": PLACES}[kind])
    return (positive if label == 1 else negative)(r, obj, kind)


def unique_reviews(r, label, n, taken):
    out = []
    while len(out) < n:
        s = review(r, label)
        if s not in taken:
            taken.add(s)
            out.append(s)
    return out


NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Ivy", "Jack", "Karen",
         "Liam", "Maria", "Noah", "Olga", "Peter", "Quinn", "Rosa", "Sam", "Tina"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "brown", "white", "black", "gray",
          "pink", "golden"]
ANIMALS = ["cat", "dog", "horse", "rabbit", "fox", "owl", "sparrow", "goat", "turtle", "squirrel",
           "duck", "donkey", "hedgehog", "parrot", "frog"]
TOWN = ["library", "harbor", "bridge", "station", "garden", "school", "bakery", "market", "museum",
        "church", "village square", "post office", "hospital", "farm", "beach"]
FOODS = ["bread", "soup", "apple pie", "cheese", "rice", "noodles", "salad", "pancakes", "cookies",
         "carrots", "potatoes", "fish", "oranges", "honey", "porridge"]
SEASONS = ["spring", "summer", "autumn", "winter"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ACTIVITIES = ["go swimming", "ride a bike", "bake bread", "plant flowers", "walk in the hills",
              "visit friends", "paint pictures", "play chess", "read novels", "go fishing",
              "sing songs", "fly a kite"]
FURNITURE = ["table", "bed", "bench", "shelf", "cupboard", "stool", "piano", "window", "fence", "door"]
PLAIN = [
    "{n} walked to the {t} in the morning.", "The weather was warm and the sky was clear.",
    "{n} read a book by the {f}.", "The train arrived at the station on time.",
    "{n} cooked {food} for the whole family.", "The children played near the {t} after school.",
    "{n} bought {ap} {p} at the store.", "We watched {am} {m} at the cinema on {d}.",
    "{n} wrote a short review of the {m}.", "{n} asked {n2} about the {p}.",
    "The shop sells {ap} {p} and {ap2} {p2}.", "{n} likes to drink tea in the afternoon.",
    "The river runs past the old mill.", "{n} saw {ac} {c} {a} near the {t}.",
    "In {s}, {n} likes to {act}.", "The {food} at the {t} was still warm.",
    "{n} and {n2} met at the {t} on {d}.", "The {a} slept under the {f}.",
    "{n} painted the {f} {c}.", "It rained all {d}, so {n} stayed home.",
    "Every {d}, {n} and {n2} {act} together.", "The {c} {a} ran across the {t}.",
    "{n} shared the {food} with {n2}.", "There are {k} {a}s on the farm.",
]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "ten", "twelve", "many"]


def plain_sentence(r):
    t = r.choice(PLAIN)
    p, p2 = r.sample(PRODUCTS, 2)
    n, n2 = r.sample(NAMES, 2)
    c, m = r.choice(COLORS), r.choice(MOVIES)
    return t.format(n=n, n2=n2, p=p, p2=p2, ap=a_or_an(p), ap2=a_or_an(p2), m=m, am=a_or_an(m), c=c,
                    ac=a_or_an(c), a=r.choice(ANIMALS), t=r.choice(TOWN), food=r.choice(FOODS),
                    s=r.choice(SEASONS), d=r.choice(DAYS), act=r.choice(ACTIVITIES),
                    f=r.choice(FURNITURE), k=r.choice(NUMBERS))


def labelled_line(r, text, label):
    word = "positive" if label == 1 else "negative"
    t = r.randrange(6)
    if t <= 1:
        return f"{text} Sentiment: {word}"
    if t == 2:
        return f"{text} This review is {word}."
    if t == 3:
        return f"{text} Overall: {word}."
    if t == 4:
        return f"The sentiment of \"{text}\" is {word}."
    return f"{r.choice(NAMES)} said: {text} That sounds {word}."


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "configs", "data", "sentiment")
    os.makedirs(out, exist_ok=True)
    r = random.Random(SEED)
    taken = set()
    test = {lab: unique_reviews(r, lab, N_TEST_PER_LABEL, taken) for lab in (0, 1)}
    train = {lab: unique_reviews(r, lab, N_TRAIN_PER_LABEL, taken) for lab in (0, 1)}

    def write_split(name, by_label):
        rows = [(s, lab) for lab in (0, 1) for s in by_label[lab]]
        r.shuffle(rows)
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="\n") as f:
            for s, lab in rows:
                rec = {"prompt": PROMPT.format(s), "candidates": CANDIDATES, "label": lab}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    write_split("test.jsonl", test)
    write_split("train.jsonl", train)

    # The corpus: fresh reviews (never a train/test one), half of them with an inline label,
    # mixed with plain sentences.
    lines, size = [], 0
    while size < CORPUS_TARGET_BYTES:
        u = r.random()
        if u < 0.25:
            line = plain_sentence(r)
        else:
            lab = r.randrange(2)
            text = unique_reviews(r, lab, 1, taken)[0]
            line = text if u < 0.55 else labelled_line(r, text, lab)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
