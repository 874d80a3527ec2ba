"""What both Keras flavours share: telling the layers Keras makes from the user's."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

# From the tracking callback up to the Keras method that called a constructor: the
# hook wrapper, Layer/Operation/Model __init__ chains and __new__; a dozen is ample.
MAX_FRAMES = 16


def internal_constructors(*methods: Any) -> Callable[[], bool]:
    """A check, for use inside a layer-tracking callback, that the layer being made was
    constructed by one of ``methods`` (Keras's own code), not by the user.

    Walks at most ``MAX_FRAMES`` frames, and only when a layer is constructed.
    """
    # Fully unwrapped: Keras's decorators share one generic wrapper code object.
    codes = {inspect.unwrap(m).__code__ for m in methods}

    def made_by_keras() -> bool:
        frame: FrameType | None = sys._getframe(2)  # the tracking callback's caller
        for _ in range(MAX_FRAMES):
            if frame is None:
                return False
            if frame.f_code in codes:
                return True
            frame = frame.f_back
        return False

    return made_by_keras
