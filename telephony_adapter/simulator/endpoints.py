"""What a simulated phone does when the ACD originates a call to it.

The patterns are the ones captured from a real Asterisk 22 with real SIP phones
(``tests/fixtures/ari_traces/sip_agent_noanswer_busy.jsonl``): a phone that never answers
rings until the originate timeout and is destroyed with cause 19 and no NOANSWER ``Dial``;
a busy phone answers 486 (``Dial BUSY``, cause 17).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class AnswerAfter:
    """Rings for ``delay`` (+/- ``jitter``) simulated seconds, then answers."""

    delay: float = 1.0
    jitter: float = 0.0
    # A phone already on a call answers 486, as a phone without call waiting does.
    busy_when_in_use: bool = True

    def ring_seconds(self, rng: random.Random) -> float:
        return max(0.0, self.delay + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0))


@dataclass(frozen=True)
class NeverAnswer:
    """Rings until the originate timeout: ChannelDestroyed cause 19 (SIP 480)."""


@dataclass(frozen=True)
class Busy:
    """Answers 486 Busy Here after ``delay``: Dial BUSY, ChannelDestroyed cause 17."""

    delay: float = 0.05


@dataclass(frozen=True)
class HangUpAfter:
    """Answers after ``ring`` seconds and hangs up (BYE) ``talk`` seconds later."""

    talk: float = 10.0
    ring: float = 1.0


@dataclass(frozen=True)
class Unavailable:
    """Not registered: Dial CHANUNAVAIL, ChannelDestroyed cause 20."""


Behaviour = Union[AnswerAfter, NeverAnswer, Busy, HangUpAfter, Unavailable]

_BY_NAME = {"answer": AnswerAfter, "answer-after-delay": AnswerAfter, "never-answer": NeverAnswer,
            "busy": Busy, "hang-up-after": HangUpAfter, "unavailable": Unavailable}


def behaviour_from(spec: Union[Behaviour, str], **kwargs: float) -> Behaviour:
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec](**kwargs)
        except KeyError:
            raise ValueError(f"unknown endpoint behaviour {spec!r}; one of {sorted(_BY_NAME)}")
    return spec
