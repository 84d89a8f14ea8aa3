"""Word-level helpers for referring expressions (docs/refexp_data.md, "Augmentation")."""
import re
from typing import Dict, Sequence, Tuple

__all__ = ['DIRECTION_PREFIXES', 'names_direction', 'swap_words']

DIRECTION_PREFIXES = ('left', 'right', 'top', 'bottom', 'middle')


def names_direction(text: str, prefixes: Sequence[str] = DIRECTION_PREFIXES) -> bool:
    """Whether a word of ``text`` starts with a direction word (case-insensitive).

    ``'the leftmost man'``, ``'Top shelf'`` -> True; ``'the bright lamp'`` -> False (TransVG tests
    substrings, so "bright" counted as a direction there).
    """
    pattern = r'\b(?:' + '|'.join(map(re.escape, prefixes)) + ')'
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _match_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def swap_words(text: str, pairs: Sequence[Tuple[str, str]]) -> str:
    """Swap whole words pairwise (``left`` <-> ``right``), keeping case and punctuation.

    Only whole words are swapped: ``'bright'`` and ``'lefty'`` stay, ``'left-hand'`` becomes
    ``'right-hand'``, ``'Left,'`` becomes ``'Right,'``.
    """
    table: Dict[str, str] = {}
    for a, b in pairs:
        table[a.lower()], table[b.lower()] = b.lower(), a.lower()
    if not table:
        return text
    words = sorted(table, key=len, reverse=True)
    pattern = r'\b(' + '|'.join(map(re.escape, words)) + r')\b'
    return re.sub(pattern, lambda m: _match_case(table[m.group(0).lower()], m.group(0)), text,
                  flags=re.IGNORECASE)
