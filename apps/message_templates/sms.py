"""How long an SMS is and how many parts it is sent in (GSM 03.38 and UCS-2 rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 basic character set: one septet each.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: an escape septet plus one, so two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
# A concatenated message spends part of each segment on its header (UDH).
_MULTI = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True, slots=True)
class SmsInfo:
    """`length` is in septets for GSM-7 and in UTF-16 code units for UCS-2."""

    encoding: Literal["GSM-7", "UCS-2"]
    length: int
    segments: int


def sms_segments(text: str) -> SmsInfo:
    """The encoding an SMS needs, its length in that encoding, and its number of segments.

    Segments are packed as phones and carriers do: a two-unit character (a GSM-7 escape pair, or a
    UTF-16 surrogate pair such as an emoji) is never split, so it may start a new segment early.
    An empty text has 0 segments.
    """
    encoding: Literal["GSM-7", "UCS-2"]
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        encoding = "GSM-7"
        units = [2 if char in GSM7_EXTENSION else 1 for char in text]
    else:
        encoding = "UCS-2"
        units = [2 if ord(char) > 0xFFFF else 1 for char in text]
    length = sum(units)
    if length == 0:
        return SmsInfo(encoding=encoding, length=0, segments=0)
    if length <= _SINGLE[encoding]:
        return SmsInfo(encoding=encoding, length=length, segments=1)
    capacity = _MULTI[encoding]
    segments, used = 1, 0
    for size in units:
        if used + size > capacity:
            segments += 1
            used = 0
        used += size
    return SmsInfo(encoding=encoding, length=length, segments=segments)
