"""Person names: one normal form, checked once for every store.

A name is stripped of surrounding white space and put in Unicode NFC (so an ``é`` typed as one
code point or as ``e`` + accent is one name). Names keep their case as given, but two names that
differ only in case (``Kit``, ``kit``) are the same person: stores look a name up by its key
(Unicode's canonical caseless form). Empty names, control characters (tabs, new lines) and the word
a non-match is answered with (``unknown``, in any case) are refused.
"""

from __future__ import annotations

import unicodedata

from ..errors import InvalidNameError
from ..types import UNKNOWN

#: Control characters (tab, new line...) and line/paragraph separators; format characters such as the
#: zero-width joiners some scripts and emoji need are allowed.
_FORBIDDEN = frozenset({"Cc", "Zl", "Zp"})


def normalize_name(name: str) -> str:
    """``name`` in its stored form (stripped, NFC), or ``InvalidNameError`` saying why it cannot be one."""
    normal = unicodedata.normalize("NFC", name).strip()
    if not normal:
        raise InvalidNameError(f"a person's name cannot be empty (got {name!r})")
    if any(unicodedata.category(char) in _FORBIDDEN for char in normal):
        raise InvalidNameError(f"a person's name cannot hold control characters or line breaks: {name!r}")
    if name_key(normal) == UNKNOWN:
        raise InvalidNameError(f"{normal!r} is reserved: identification answers it for a face nobody matches")
    return normal


def name_key(name: str) -> str:
    """What two names must share to be one person (``Kit``, ``KIT``, `` kit``): Unicode's canonical caseless
    form, NFD(casefold(NFD(name)))."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name.strip()).casefold())
