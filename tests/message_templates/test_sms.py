"""SMS length and segments: GSM-7 (160 / 153), its extension table, and UCS-2 (70 / 67)."""

from __future__ import annotations

import pytest

from apps.message_templates.sms import SmsInfo, sms_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsInfo("GSM-7", 0, 0)),
        ("a" * 160, SmsInfo("GSM-7", 160, 1)),
        ("a" * 161, SmsInfo("GSM-7", 161, 2)),
        ("a" * 306, SmsInfo("GSM-7", 306, 2)),
        ("a" * 307, SmsInfo("GSM-7", 307, 3)),
        # Accented letters of the basic table stay GSM-7.
        ("Café à Øresund, ¿sì? §5 £10 ¥2 Δ", SmsInfo("GSM-7", 32, 1)),
        # Extension characters take two septets each.
        ("€" * 80, SmsInfo("GSM-7", 160, 1)),
        ("€" * 81, SmsInfo("GSM-7", 162, 2)),
        ("{[~]}|^\\", SmsInfo("GSM-7", 16, 1)),
        # An escape pair is never split: 152 letters and a euro sign fill 154 septets but the
        # euro cannot start at septet 153 of the first segment.
        ("a" * 152 + "€" + "a" * 10, SmsInfo("GSM-7", 164, 2)),
        ("a" * 305 + "€", SmsInfo("GSM-7", 307, 3)),
        # One character outside GSM-7 switches the whole message to UCS-2.
        ("ж" * 70, SmsInfo("UCS-2", 70, 1)),
        ("ж" * 71, SmsInfo("UCS-2", 71, 2)),
        ("ж" * 134, SmsInfo("UCS-2", 134, 2)),
        ("ж" * 135, SmsInfo("UCS-2", 135, 3)),
        ("a" * 69 + "ç", SmsInfo("UCS-2", 70, 1)),
        # An emoji is two UTF-16 units, never split between segments.
        ("😀" * 35, SmsInfo("UCS-2", 70, 1)),
        ("😀" * 36, SmsInfo("UCS-2", 72, 2)),
        ("a" + "😀" * 34, SmsInfo("UCS-2", 69, 1)),
        ("a" * 66 + "😀" + "a" * 10, SmsInfo("UCS-2", 78, 2)),
    ],
)
def test_sms_segments(text: str, expected: SmsInfo) -> None:
    assert sms_segments(text) == expected
