"""What a service says when a second signal ends its stop."""

from __future__ import annotations

import signal

from runledger.services import second_signal_reason


def test_a_second_signal_after_the_parent_died_says_so() -> None:
    """``up`` killed with SIGKILL: the kernel signals its children, more than once, and
    each logged "a second SIGTERM came while stopping" as if Ctrl-C was pressed twice."""
    alone = second_signal_reason(signal.SIGTERM, 4242, 1)
    assert alone == (
        "a second SIGTERM came while stopping; the process that started it (pid 4242) is gone"
    )
    assert second_signal_reason(signal.SIGINT, 4242, 4242) == "a second SIGINT came while stopping"
