"""The integer side of the counter-based hash, pinned: a changed constant would silently change every backend's
draws."""

from recengine.ops.counter_hash import MASK32, mix32_int, seed_key


def test_the_mixing_function_and_the_seed_key_are_the_documented_ones():
    assert mix32_int(1) == 1753845952
    assert seed_key(123) == 3336997240


def test_the_seed_key_folds_64_bit_seeds_into_32_bits():
    assert 0 <= seed_key(2**64 - 1) <= MASK32
    assert seed_key(2**64 + 5) == seed_key(5)  # a seed is read modulo 2^64
    assert seed_key(5) != seed_key(5 + 2**32)  # the high half counts
