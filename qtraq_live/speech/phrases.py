"""What a call says in each language, and the espeak-ng voice that says it.

The label's number is given as digits: espeak-ng reads digits the way its voice's language
says numbers (Hindi "12" is "बारह", Tamil "பன்னிரண்டு"). The prefix letter is read as a
letter. A counter named by digits alone ("3") is said with the language's word for counter;
any other counter name ("Room 3") is read as the staff wrote it.
"""

from __future__ import annotations

import re

# language -> (espeak-ng voice, sentence with {token}, {where}; the word for "counter")
PHRASES: dict[str, tuple[str, str, str]] = {
    "en": ("en-gb", "Token {token}, please go to {where}.", "counter"),
    "hi": ("hi", "टोकन {token}, कृपया {where} पर जाइए।", "काउंटर"),
    "bn": ("bn", "টোকেন {token}, অনুগ্রহ করে {where} এ যান।", "কাউন্টার"),
    "ta": ("ta", "டோக்கன் {token}, தயவுசெய்து {where} க்கு செல்லவும்.", "கவுண்டர்"),
    "te": ("te", "టోకెన్ {token}, దయచేసి {where} కు వెళ్ళండి.", "కౌంటర్"),
    "mr": ("mr", "टोकन {token}, कृपया {where} येथे जा.", "काउंटर"),
    "gu": ("gu", "ટોકન {token}, કૃપા કરીને {where} પર જાઓ.", "કાઉન્ટર"),
    "kn": ("kn", "ಟೋಕನ್ {token}, ದಯವಿಟ್ಟು {where} ಗೆ ಹೋಗಿ.", "ಕೌಂಟರ್"),
    "ml": ("ml", "ടോക്കൺ {token}, ദയവായി {where} ലേക്ക് പോകുക.", "കൗണ്ടർ"),
    "pa": ("pa", "ਟੋਕਨ {token}, ਕਿਰਪਾ ਕਰਕੇ {where} ਤੇ ਜਾਓ।", "ਕਾਊਂਟਰ"),
    "or": ("or", "ଟୋକେନ୍ {token}, ଦୟାକରି {where} କୁ ଯାଆନ୍ତୁ।", "କାଉଣ୍ଟର"),
    "as": ("as", "টোকেন {token}, অনুগ্ৰহ কৰি {where} লৈ যাওক।", "কাউণ্টাৰ"),
    "ur": ("ur", "ٹوکن {token}، براہ کرم {where} پر جائیں۔", "کاؤنٹر"),
}
SUPPORTED = tuple(PHRASES)
DEFAULT_LANGUAGES = ("en", "hi")  # a clinic's announcement languages until it chooses
_LABEL = re.compile(r"^([A-Z]{1,3})-0*(\d+)$")


def spoken_token(label: str) -> str:
    """``A-012`` -> ``A 12``: the letter, then the number as a number (not "zero one two")."""
    m = _LABEL.match(label)
    return f"{m[1]} {m[2]}" if m else label.replace("-", " ")


def call_text(lang: str, label: str, counter: str) -> str:
    """The sentence a TV says for one call in ``lang`` (one of :data:`SUPPORTED`)."""
    _, sentence, counter_word = PHRASES[lang]
    where = f"{counter_word} {counter}" if counter.isdigit() else counter
    return sentence.format(token=spoken_token(label), where=where)


def voice(lang: str) -> str:
    return PHRASES[lang][0]
