"""Stop signals in the starter: interrupt like Ctrl-C, wait for a critical section, ignored while stopping."""

from __future__ import annotations

import os
import signal

import pytest

from streams.embedded.lifecycle import ignoring_signals, signals_deferred, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_interrupts_like_ctrl_c(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        os.kill(os.getpid(), sig)
        for _ in range(1000):
            pass
    assert signal.getsignal(sig) == before  # restored after the block


def test_a_signal_in_a_critical_section_interrupts_right_after_it() -> None:
    recorded: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
            recorded.append("child recorded")  # reached: the interrupt waited
        recorded.append("after")  # not reached: it interrupts on leaving the section
    assert recorded == ["child recorded"]


def test_signals_are_ignored_while_stopping() -> None:
    with stop_on_signals():
        with ignoring_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        stopped = True
    assert stopped
