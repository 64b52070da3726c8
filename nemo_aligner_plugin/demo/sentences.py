"""The demo corpus's sentences: a template grammar of voice-assistant English, drawn from a seeded RNG.

Commands, numbers, times, dates, places, weather, navigation, ...: every transcript is lower-case words with no
digits (numbers spelled out), so a tiny model sees varied n-grams with a small alphabet. Everything is drawn from the
``random.Random`` passed in: the same seed gives the same sentences (the corpus depends on it byte for byte).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

__all__ = [
    "number_words",
    "ordinal_words",
    "generate_sentences",
    "generate_long_texts",
    "spoken_sentences",
    "TEMPLATES",
]

# fmt: off
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
        "twelve": "twelfth"}
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "garage", "office", "hallway", "basement", "garden",
         "dining room", "nursery", "attic", "porch", "guest room"]
DEVICES = ["lights", "lamp", "fan", "heater", "air conditioner", "television", "radio", "speakers",
           "coffee maker", "oven", "dishwasher", "washing machine", "kettle", "humidifier", "printer",
           "projector"]
CITIES = ["london", "paris", "tokyo", "berlin", "madrid", "rome", "boston", "chicago", "seattle", "denver",
          "dallas", "toronto", "sydney", "dublin", "lisbon", "vienna", "prague", "oslo", "stockholm", "helsinki",
          "cairo", "mumbai", "delhi", "beijing", "seoul", "bangkok", "singapore", "istanbul", "athens",
          "amsterdam", "brussels", "zurich", "geneva", "miami", "atlanta", "phoenix", "houston", "austin",
          "montreal", "vancouver", "edinburgh", "glasgow", "manchester", "liverpool", "new york", "los angeles",
          "san francisco", "mexico city", "buenos aires", "cape town"]
PLACES = ["gas station", "pharmacy", "airport", "train station", "hospital", "library", "museum", "restaurant",
          "coffee shop", "supermarket", "bank", "post office", "hotel", "park", "beach", "bus stop",
          "parking lot", "school", "bakery", "cinema", "gym", "stadium", "zoo", "market"]
CONTACTS = ["mom", "dad", "alice", "bob", "sarah", "john", "emma", "david", "maria", "james", "olivia",
            "michael", "sophie", "daniel", "grandma", "grandpa", "the office", "the doctor", "my sister",
            "my brother", "peter", "laura", "kevin", "nina"]
TASKS = ["buy milk", "call the dentist", "pick up the kids", "water the plants", "pay the rent", "feed the cat",
         "walk the dog", "take out the trash", "book a haircut", "renew my passport", "send the report",
         "charge my phone", "buy some bread", "clean the kitchen", "check the mail", "return the library books",
         "take my medicine", "fill up the car", "pack my bag", "order more coffee"]
ITEMS = ["eggs", "apples", "bananas", "rice", "butter", "cheese", "coffee", "tea", "bread", "milk", "tomatoes",
         "onions", "potatoes", "chicken", "pasta", "yogurt", "oranges", "carrots", "soap", "batteries", "lemons",
         "cereal"]
GENRES = ["jazz", "rock", "classical", "pop", "country", "blues", "reggae", "hip hop", "folk", "soul",
          "electronic", "relaxing", "piano", "dance"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
WHEN = ["today", "tomorrow", "tonight", "this morning", "this afternoon", "this evening", "this weekend",
        "next week", "on monday", "on friday", "tomorrow morning", "later today", "right now"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy", "stormy", "humid", "cold", "warm", "hot",
              "freezing", "clear", "mild"]
DIRECTIONS = ["left", "right"]
ROADS = ["street", "avenue", "road", "lane", "boulevard", "drive"]
STREETS = ["oak", "maple", "pine", "church", "high", "park", "main", "king", "queen", "river", "hill", "market",
           "station", "mill", "bridge", "elm", "cedar", "lake"]
UNITS = ["minutes", "hours", "seconds"]
MESSAGES = ["i am on my way", "see you soon", "call me back", "happy birthday", "don't forget the keys",
            "i'm running late", "dinner is ready", "where are you"]
APPS = ["calendar", "camera", "calculator", "settings", "music player", "email", "map", "weather app",
        "photo gallery", "notes"]
JUNCTIONS = ["junction", "traffic light", "roundabout", "corner", "crossroads", "exit"]
COMMANDS = ["play the next song", "skip this song", "pause the music", "turn the volume up", "turn the volume down",
            "stop the music", "what song is this", "lock the front door", "open the garage door", "close the blinds",
            "what time is it", "cancel my alarm", "read my messages", "what's on my calendar today"]
# fmt: on


def number_words(n: int) -> str:
    """Spell out 0..9999 in words so the transcripts contain no digits."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def ordinal_words(n: int) -> str:
    """Ordinal for day-of-month style numbers (1..99): "twenty first", "thirtieth"."""
    words = number_words(n).split()
    last = words[-1]
    if last in _ORD:
        words[-1] = _ORD[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _time(r: random.Random) -> str:
    h = r.randint(1, 12)
    kind = r.randrange(6)
    hw = number_words(h)
    if kind == 0:
        t = f"{hw} o'clock"
    elif kind == 1:
        t = f"half past {hw}"
    elif kind == 2:
        t = f"quarter {r.choice(['past', 'to'])} {hw}"
    else:
        m = r.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, r.randint(1, 59)])
        t = f"{hw} " + (f"oh {_ONES[m]}" if m < 10 else number_words(m))
    if r.random() < 0.3:
        t += " " + r.choice(["in the morning", "in the evening", "at night", "p m", "a m"])
    return t


def _date(r: random.Random) -> str:
    month, day = r.choice(MONTHS), ordinal_words(r.randint(1, 28))
    form = r.randrange(3)
    if form == 0:
        return f"{month} {day}"
    if form == 1:
        return f"the {day} of {month}"
    return f"{r.choice(DAYS)} {month} {day}"


def _n(r: random.Random, lo: int, hi: int) -> str:
    return number_words(r.randint(lo, hi))


# Each template draws its slots from ``r``; the list is deliberately broad (home control, timers,
# weather, navigation, messaging, calendar, arithmetic, travel) so a tiny model sees varied n-grams.
TEMPLATES: list[Callable[[random.Random], str]] = [
    lambda r: f"turn {r.choice(['on', 'off'])} the {r.choice(ROOMS)} {r.choice(DEVICES)}",
    lambda r: f"switch {r.choice(['on', 'off'])} the {r.choice(DEVICES)} in the {r.choice(ROOMS)}",
    lambda r: f"set an alarm for {_time(r)}",
    lambda r: f"wake me up at {_time(r)} {r.choice(['', 'tomorrow', 'on ' + r.choice(DAYS)])}",
    lambda r: f"set a timer for {_n(r, 2, 90)} {r.choice(UNITS)}",
    lambda r: f"set the {r.choice(ROOMS)} temperature to {_n(r, 15, 30)} degrees",
    lambda r: f"set the thermostat to {_n(r, 15, 30)} degrees",
    lambda r: f"dim the {r.choice(ROOMS)} lights to {_n(r, 5, 95)} percent",
    lambda r: f"set the volume to {_n(r, 1, 10)}",
    lambda r: f"what's the weather {r.choice(['in ' + r.choice(CITIES), 'like'])} {r.choice(WHEN)}",
    lambda r: f"will it {r.choice(['rain', 'snow'])} in {r.choice(CITIES)} {r.choice(WHEN)}",
    lambda r: f"is it going to be {r.choice(CONDITIONS)} {r.choice(WHEN)}",
    lambda r: f"it's {_n(r, 0, 40)} degrees and {r.choice(CONDITIONS)} in {r.choice(CITIES)}",
    lambda r: f"navigate to the nearest {r.choice(PLACES)}",
    lambda r: f"how far is {r.choice(CITIES)} from {r.choice(CITIES)}",
    lambda r: f"take me to {_n(r, 1, 999)} {r.choice(STREETS)} {r.choice(ROADS)}",
    lambda r: f"in {_n(r, 1, 900)} {r.choice(['meters', 'miles', 'feet'])} turn {r.choice(DIRECTIONS)}",
    lambda r: f"turn {r.choice(DIRECTIONS)} at the {ordinal_words(r.randint(1, 5))} {r.choice(JUNCTIONS)}",
    lambda r: f"how long will it take to drive to {r.choice(CITIES + PLACES)}",
    lambda r: f"call {r.choice(CONTACTS)} {r.choice(['', 'on speaker', 'on mobile', 'at work', 'right now'])}",
    lambda r: f"text {r.choice(CONTACTS)} that i'll be {_n(r, 5, 45)} minutes late",
    lambda r: f"send a message to {r.choice(CONTACTS)} saying {r.choice(MESSAGES)}",
    lambda r: f"remind me to {r.choice(TASKS)} {r.choice(WHEN + ['at ' + _time(r)])}",
    lambda r: f"add {r.choice(ITEMS)} {r.choice(['', 'and ' + r.choice(ITEMS)])} to my shopping list",
    lambda r: f"play some {r.choice(GENRES)} music {r.choice(['', 'in the ' + r.choice(ROOMS)])}",
    lambda r: r.choice(COMMANDS),
    lambda r: f"what time is it in {r.choice(CITIES)}",
    lambda r: f"what day of the week is {_date(r)}",
    lambda r: f"book a table for {_n(r, 2, 12)} at {_time(r)}",
    lambda r: f"book a flight to {r.choice(CITIES)} on {_date(r)}",
    lambda r: f"schedule a meeting with {r.choice(CONTACTS)} on {r.choice(DAYS)} at {_time(r)}",
    lambda r: f"my appointment is on {_date(r)}",
    lambda r: f"what is {_n(r, 1, 99)} {r.choice(['plus', 'minus', 'times'])} {_n(r, 1, 20)}",
    lambda r: f"how many {r.choice(UNITS)} are in {_n(r, 2, 12)} {r.choice(['days', 'hours', 'weeks'])}",
    lambda r: f"the train to {r.choice(CITIES)} leaves at {_time(r)}",
    lambda r: f"the bus leaves from platform {_n(r, 1, 20)} at {_time(r)}",
    lambda r: f"open the {r.choice(APPS)}",
    lambda r: f"close the {r.choice(ROOMS)} {r.choice(['blinds', 'curtains', 'window', 'door'])}",
    lambda r: f"what's the population of {r.choice(CITIES)}",
    lambda r: f"find a {r.choice(['cheap', 'quiet', 'good', 'nearby'])} {r.choice(PLACES)} in {r.choice(CITIES)}",
    lambda r: f"order {_n(r, 2, 12)} {r.choice(ITEMS)} for {r.choice(DAYS)}",
    lambda r: f"my phone number ends in {_n(r, 0, 9)} {_n(r, 0, 9)} {_n(r, 0, 9)} {_n(r, 0, 9)}",
    lambda r: f"the meeting was moved to {r.choice(DAYS)} the {ordinal_words(r.randint(1, 28))}",
    lambda r: f"the year {number_words(r.choice([19, 20]))} {_n(r, 10, 99)} was {r.choice(CONDITIONS)}",
]


def _clean(text: str) -> str:
    return " ".join(text.split())


def generate_sentences(
    rng: random.Random, n: int, min_words: int = 3, max_words: int = 10, exclude: set[str] | None = None
) -> list[str]:
    """Draw ``n`` distinct template sentences with ``min_words..max_words`` words.

    Sentences in ``exclude`` are skipped and every returned sentence is added to it, so callers
    can chain splits and guarantee e.g. that test text never appears in train/dev.
    """
    seen = exclude if exclude is not None else set()
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise RuntimeError(f"could not draw {n} unique sentences; the template space is exhausted")
        s = _clean(TEMPLATES[rng.randrange(len(TEMPLATES))](rng))
        if s in seen or not (min_words <= len(s.split()) <= max_words):
            continue
        seen.add(s)
        out.append(s)
    return out


def generate_long_texts(
    rng: random.Random, n: int, max_words: int = 10, exclude: set[str] | None = None
) -> list[list[str]]:
    """Groups of unseen sentences with 2.4-3x ``max_words`` words in total, spoken as one utterance.

    Duration scales with word count, so this lands near twice the longest training utterance. That
    budget needs three sentences: two <=10-word sentences at an average rate only reach ~1.6x the
    longest (slowest-rate) training utterance.
    """
    seen = exclude if exclude is not None else set()
    lo, hi = round(2.4 * max_words), 3 * max_words
    groups: list[list[str]] = []
    for _ in range(1000 * n + 10_000):
        if len(groups) == n:
            return groups
        cand = generate_sentences(rng, 3, max(3, max_words // 2), max_words, exclude=set(seen))
        if lo <= sum(len(s.split()) for s in cand) <= hi:
            seen.update(cand)
            groups.append(cand)
    if len(groups) < n:
        raise RuntimeError(f"could not draw {n} long utterances")
    return groups


def spoken_sentences(group: Sequence[str]) -> str:
    """What espeak-ng reads for a group of sentences: one sentence stays as it is (the train/dev/test text).

    Several are capitalized and end in a full stop. espeak-ng ends a sentence only at a full stop followed by a
    capital letter (or a line break): "four. text" is read on without a pause, "four. Text" with one.
    """
    if len(group) == 1:
        return group[0]
    return " ".join(s[:1].upper() + s[1:] + "." for s in group)
