"""Virtual time for the simulator: ``speed`` simulated seconds pass per real second.

Every delay in the simulator (prompt lengths, ring delays, caller patience, talk times) is
expressed in simulated seconds and every event timestamp is simulated time, so a whole
call-center day can run in minutes with the same event order and the same relative timing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone


class SimClock:
    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        if start is not None and start.tzinfo is None:
            raise ValueError("start must carry a timezone offset")
        self._start = start or datetime.now(timezone.utc)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def elapsed(self) -> float:
        """Simulated seconds since the clock started."""
        return (time.monotonic() - self._t0) * self.speed

    def stamp(self) -> str:
        """Asterisk's timestamp format: ``2026-11-22T13:28:33.493+0000``."""
        # Asterisk stamps in UTC here (its zone on the traced box): convert, so a
        # start given in +08:00 does not come out eight hours wrong.
        now = self.now().astimezone(timezone.utc)
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of simulated time take."""
        return max(0.0, seconds) / self.speed
