"""Write notebooks/data/reviews.csv: short made-up reviews with their topic and sentiment.

Every sentence is assembled here from the lists below (nothing is copied from anywhere), so
the file is ours to give away: it is dedicated to the public domain (CC0). The seed makes the
file reproducible: ``python scripts/make_reviews_dataset.py``.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "data" / "reviews.csv"
ROWS = 300

TOPICS = {
    "food": ["the soup", "the bread", "the pasta", "the coffee", "the curry", "the salad", "the pie"],
    "hotel": ["the room", "the bed", "the breakfast", "the front desk", "the pool", "the view"],
    "phone": ["the battery", "the screen", "the camera", "the charger", "the speaker", "the case"],
    "film": ["the plot", "the acting", "the soundtrack", "the ending", "the dialogue", "the pacing"],
    "garden": ["the roses", "the hedge", "the lawn", "the tomatoes", "the shed", "the path"],
}
PRICED = {"food", "hotel", "phone"}
WORDS = {
    "positive": ["wonderful", "excellent", "lovely", "superb", "delightful", "great"],
    "negative": ["awful", "disappointing", "terrible", "dreadful", "poor", "broken"],
    "neutral": ["ordinary", "as expected", "average", "fine, nothing more", "standard", "unremarkable"],
}
OPENINGS = ["Honestly,", "Overall,", "I must say", "To be fair,", "In short,", ""]
PRICE_NOTES = {
    "positive": ["and worth every penny", "and cheap too"],
    "negative": ["and far too expensive", "and a waste of money"],
    "neutral": ["for a fair price", "at the usual price"],
}
ENDINGS = {
    "positive": ["I would happily come back.", "Highly recommended.", "It made my day."],
    "negative": ["I will not return.", "Avoid it.", "What a letdown."],
    "neutral": ["It did the job.", "Nothing to write home about.", "Neither good nor bad."],
}


def review(rng: random.Random) -> tuple[str, str, str, bool]:
    topic = rng.choice(sorted(TOPICS))
    sentiment = rng.choice(sorted(WORDS))
    subject = rng.choice(TOPICS[topic])
    priced = topic in PRICED and rng.random() < 0.4
    words = [rng.choice(OPENINGS), subject, "was", rng.choice(WORDS[sentiment])]
    if priced:
        words.append(rng.choice(PRICE_NOTES[sentiment]))
    sentence = " ".join(w for w in words if w).strip() + ". " + rng.choice(ENDINGS[sentiment])
    return sentence[0].upper() + sentence[1:], topic, sentiment, priced


def main() -> None:
    rng = random.Random(2026)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "topic", "sentiment", "mentions_price"])
        for index in range(ROWS):
            writer.writerow([index, *review(rng)])


if __name__ == "__main__":
    main()
