"""How long the simulator pretends each prompt lasts (simulated seconds).

Asterisk's stock sounds used by the traces and the IVR; anything else gets a default so
an IVR configured with new prompt names still works against the simulator.
"""

from __future__ import annotations

KNOWN_SECONDS = {
    "hello-world": 1.4,       # as timed in the captures (1.402-1.403 s)
    "demo-congrats": 20.0,    # long: the capture hung up 9.6 s into it
    "queue-thankyou": 2.0,
    "queue-youarenext": 1.5,
    "queue-thereare": 1.0,
    "queue-callswaiting": 1.2,
    "queue-holdtime": 1.5,
    "pls-hold-while-try": 2.0,
    "beep": 0.3,
    "vm-goodbye": 0.8,
    "silence/1": 1.0,
    "silence/2": 2.0,
}
DEFAULT_SECONDS = 2.5
PER_DIGIT_SECONDS = 0.5


def media_seconds(media_uri: str) -> float:
    """``sound:hello-world``, ``digits:1234``, ``number:42``, ``tone:ring``..."""
    scheme, _, name = media_uri.partition(":")
    if scheme in ("digits", "characters"):
        return max(1, len(name)) * PER_DIGIT_SECONDS
    if scheme == "number":
        return max(1, len(name)) * PER_DIGIT_SECONDS + 0.3
    if scheme == "tone":
        return DEFAULT_SECONDS
    if name.startswith("silence/"):
        try:
            return float(name.split("/", 1)[1])
        except ValueError:
            return DEFAULT_SECONDS
    return KNOWN_SECONDS.get(name, DEFAULT_SECONDS)
