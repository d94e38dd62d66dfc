"""Spoken calls: "Token A 12, please go to counter 3" as audio, in each of a clinic's languages.

    phrases.py    pure: the sentence per language, the espeak-ng voice for each
    clips.py      espeak-ng renders a sentence to WAV, cached on disk by its text
    languages.py  a clinic's announcement languages (SQLite, mirrored to Redis)

The TV asks ``GET /api/v1/clinics/{clinic}/calls/{version}/audio?lang=xx&key=…`` for each
call and plays the clips one after another (display/static/speech.js). See docs/screens.md.
"""
