"""Media tests: the real engine (worker processes or its worker thread) and real aiortc peers that stand
in for browsers (openvisit.media.synthetic). Each test runs its own event loop with asyncio.run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np
import numpy.typing as npt
import pytest

from openvisit.domain.enums import VisitKind
from openvisit.media.aiortc_engine import AiortcEngine
from openvisit.media.engine import MediaEvent, MediaEventKind, Side, VisitMedia
from openvisit.media.synthetic import RGB, Participant, mean_rgb, near
from openvisit.settings import Settings
from tests.conftest import TEST_SECRET

T = TypeVar("T")
TEST_SECONDS = 90.0
"""No media test takes this long; a hang fails instead of blocking the run."""
WAIT = 15.0
"""How long a test waits for media to arrive or stop (generous: the machine is shared)."""
VISITOR_TONE, RESIDENT_TONE = 440.0, 880.0


def run(scenario: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(TEST_SECONDS):
            return await scenario

    return asyncio.run(bounded())


def media_settings(tmp_path: Path, workers: int) -> Settings:
    return Settings(
        mode="test",
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        var_dir=tmp_path / "var",
        media_workers=workers,
    )


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "recordings"
    path.mkdir(parents=True)
    return path


@dataclass
class Events:
    """What the engine reported, as the signalling hub would get it."""

    seen: list[MediaEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, event: MediaEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    def of(self, kind: MediaEventKind, side: Side | None = None) -> list[MediaEvent]:
        return [e for e in self.seen if e.kind is kind and (side is None or e.side is side)]

    async def wait_for(self, kind: MediaEventKind, side: Side | None = None, count: int = 1) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.of(kind, side)) < count:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[AiortcEngine, Events]]:
    engine = AiortcEngine(settings)
    events = Events()
    await engine.start(events)
    try:
        yield engine, events
    finally:
        await engine.stop()


def social(visit_id: int, path: Path | None) -> VisitMedia:
    return VisitMedia(visit_id, VisitKind.SOCIAL, datetime.now(UTC) + timedelta(minutes=30), path)


def legal(visit_id: int) -> VisitMedia:
    return VisitMedia(visit_id, VisitKind.LEGAL, datetime.now(UTC) + timedelta(minutes=30), None)


async def join(engine: AiortcEngine, visit_id: int, side: Side, peer: Participant) -> None:
    await peer.accept(await engine.admit(visit_id, side, await peer.offer()))


def sees(rgb: RGB) -> Any:
    """A check for Reception.wait_until: the latest picture has this colour."""
    return lambda r: r.last is not None and near(mean_rgb(r.last), rgb)


def hears(hz: float) -> Any:
    """A check for Reception.wait_until: the last second's loudest frequency is this one."""
    return lambda r: r.frames >= 50 and abs(r.tone() - hz) < 20


async def close_all(*peers: Any) -> None:
    for peer in peers:
        await peer.close()


# --- reading a recording ----------------------------------------------------------------------------


@dataclass
class Recording:
    video_frames: int
    pictures: list[tuple[RGB, RGB]]
    """Mean colour of the left and right half of every decoded picture."""
    left: npt.NDArray[np.float64]
    right: npt.NDArray[np.float64]


def read_recording(path: Path) -> Recording:
    """Decode a recording as a player would, stopping quietly at a damaged tail."""
    pictures: list[tuple[RGB, RGB]] = []
    sound: list[npt.NDArray[np.float64]] = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(*container.streams):
                if isinstance(frame, av.VideoFrame):
                    rgb = frame.to_ndarray(format="rgb24")
                    half = rgb.shape[1] // 2
                    left = tuple(int(v) for v in rgb[:, :half].reshape(-1, 3).mean(axis=0))
                    right = tuple(int(v) for v in rgb[:, half:].reshape(-1, 3).mean(axis=0))
                    pictures.append((left, right))  # type: ignore[arg-type]
                elif isinstance(frame, av.AudioFrame):
                    samples = frame.to_ndarray()
                    samples = samples.T if frame.format.is_planar else samples.reshape(-1, 2)
                    scale = 32768.0 if samples.dtype == np.int16 else 1.0  # to [-1, 1]
                    sound.append(samples.astype(np.float64) / scale)
        except av.FFmpegError:
            pass
    stereo = np.concatenate(sound) if sound else np.zeros((0, 2))
    return Recording(len(pictures), pictures, stereo[:, 0], stereo[:, 1])


def loudest(samples: npt.NDArray[np.float64], rate: int = 48_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
