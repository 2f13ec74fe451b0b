"""The soak bench's settling after an attack (bench/soak.py ``settle``), on the sequence that made the connect
flood look like a leak (issue 13).

After a listen-queue overflow the kernel completes some of the attack's connections late, re-sending its
SYN-ACK up to its retry span after the attack; the server holds each for its header timeout. The bench used to
end its wait at the first moment the daemon's descriptor count was back and then count a late connection that
arrived just after as "left" (1-4 of them, each under a second old by the server's own account). Here the
descriptor counts are scripted and the clock is one tick per sample: counts, not timings.
"""

from bench.soak import settle


def scripted(counts):
    """``sample`` giving ``counts`` one after the other, and a clock that ticks once per sample."""
    ticks = [0]

    def sample():
        ticks[0] += 1
        return counts[min(ticks[0] - 1, len(counts) - 1)]
    return sample, lambda: ticks[0]


# baseline 28; back at the 2nd sample, a late connection (held for its header timeout) at the 4th to 7th,
# back again from the 8th on: the kernel's late span ends at tick 5
LATE = [30, 28, 28, 29, 29, 29, 29, 28, 28, 28]


def test_back_to_the_baseline_before_the_late_span_is_over_is_not_settled():
    sample, clock = scripted(LATE)
    assert settle(sample, 28, quiet_from=5, give_up=100, clock=clock)
    # the first sample back at 28 taken at tick 5 or later, after the late connection closed; the old criterion
    # ended the wait at tick 2, then found the late connection open
    assert clock() == 8


def test_without_an_overflow_the_first_sample_back_settles():
    sample, clock = scripted(LATE)
    assert settle(sample, 28, quiet_from=0, give_up=100, clock=clock)
    assert clock() == 2


def test_a_descriptor_that_stays_is_reported_once_the_guard_is_over():
    sample, clock = scripted([30, 29, 29, 29])
    assert not settle(sample, 28, quiet_from=2, give_up=10, clock=clock)
    assert clock() == 10
