"""The names nearest to a mistyped one: a word that names a provider narrows the choice to that provider's
tools, then the other words are matched, so `list-exoscale-instances` finds `list-compute-instances` (an
Exoscale tool sharing "list" and "instances") rather than Incus's `list-instances`, the closest spelling."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

SHOWN = 3  # names suggested at most
ENOUGH = 0.45  # below this a name is not near: better none than a wrong lead


def words(name: str) -> set[str]:
    """A name's words, singular: `list-instances` is {list, instance}."""
    parts = name.lower().replace("_", "-").replace(".", "-").split("-")
    return {part[:-1] if len(part) > 3 and part.endswith("s") else part for part in parts if part}


def nearest(name: str, names: Mapping[str, str], provider_words: Mapping[str, Collection[str]]) -> list[str]:
    """Up to SHOWN of `names` (name -> its provider) nearest to `name`, nearest first."""
    asked = words(name)
    every_provider_word = {word for group in provider_words.values() for word in group}
    meant = {provider for provider, group in provider_words.items() if asked & set(group)}
    pool = [n for n, provider in names.items() if provider in meant] or list(names)
    rest = asked - every_provider_word

    def score(candidate: str) -> float:
        theirs = words(candidate) - every_provider_word
        shared = 2 * len(rest & theirs) / ((len(rest) + len(theirs)) or 1)
        return shared + 0.5 * difflib.SequenceMatcher(None, name.lower(), candidate).ratio()

    ranked = sorted(((score(candidate), candidate) for candidate in pool), key=lambda pair: (-pair[0], pair[1]))
    return [candidate for value, candidate in ranked[:SHOWN] if value >= ENOUGH]
