"""The publishers' partitioner remembers key hashes; it must place every key exactly
where Kafka's default partitioner (and ``streams.consumer.partition_for``) does."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from streams.consumer import partition_for
from streams.domain.aggregates import stream_key
from streams.publisher import KeyHashPartitioner


def test_keys_land_where_the_default_partitioner_puts_them() -> None:
    remembering = KeyHashPartitioner(max_keys=50)  # small: the memory is cleared often
    default = DefaultPartitioner()
    keys = [stream_key("process", str(uuid.uuid4())).encode() for _ in range(200)]
    for partitions in (1, 2, 4, 12):
        every = list(range(partitions))
        for key in keys * 2:  # the second time from memory (or after a clear)
            expected = default(key, every, every)
            assert remembering(key, every, every) == expected
            assert partition_for(key, partitions) == expected


def test_a_key_less_message_goes_to_an_available_partition() -> None:
    assert KeyHashPartitioner()(None, [0, 1, 2], [2]) == 2
