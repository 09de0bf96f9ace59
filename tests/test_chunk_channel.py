"""The native chunk channel seen from Python: batching, filtering, backpressure, closing."""

from __future__ import annotations

import threading
import time

import pytest

from ferrograph._core import ChannelClosed, ChunkChannel


def test_round_trip_in_one_batch():
    channel = ChunkChannel(16)
    producer = channel.producer(node=1, task=7)
    payloads = [object() for _ in range(5)]
    for p in payloads:
        assert producer.push(2, p) is True
    batch = channel.drain(100, 0)
    assert [item[2] for item in batch] == payloads  # the same objects, not copies
    assert {(task, mode) for task, mode, _ in batch} == {(7, 2)}
    assert channel.drain(100, 0) == []


def test_filter_drops_unsubscribed_chunks_at_the_producer():
    channel = ChunkChannel(1, nodes=[3], modes=1 << 2)
    assert channel.producer(4, 0).push(2, "other node") is False
    assert channel.producer(3, 0).push(1, "other mode") is False
    assert channel.producer(3, 0).push(2, "kept") is True
    assert channel.is_subscribed(3, 2) and not channel.is_subscribed(4, 2)
    assert len(channel) == 1  # filtered chunks took no capacity


def test_full_channel_blocks_producer_until_drained():
    channel = ChunkChannel(2)
    producer = channel.producer(0, 0)
    producer.push(0, 1)
    producer.push(0, 2)
    done = threading.Event()

    def push_third():
        producer.push(0, 3)
        done.set()

    thread = threading.Thread(target=push_third)
    thread.start()
    assert not done.wait(0.2), "a full channel must make the producer wait"
    assert [p for _, _, p in channel.drain(10, 1)] == [1, 2]
    assert done.wait(5)
    thread.join()
    assert [p for _, _, p in channel.drain(10, 1)] == [3]


def test_close_releases_blocked_producers_and_ends_the_consumer():
    channel = ChunkChannel(1)
    channel.producer(0, 0).push(0, "queued")
    errors = []

    def blocked():
        try:
            channel.producer(0, 1).push(0, "never")
        except ChannelClosed as e:
            errors.append(e)

    threads = [threading.Thread(target=blocked) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    channel.close()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert len(errors) == 4
    assert [p for _, _, p in channel.drain(10, 0)] == ["queued"]
    assert channel.drain(10, 0) is None
    assert channel.closed
    with pytest.raises(ChannelClosed):
        channel.producer(0, 0).push(0, "late")


def test_drain_times_out_empty():
    channel = ChunkChannel(4)
    start = time.monotonic()
    assert channel.drain(10, 0.05) == []
    assert time.monotonic() - start >= 0.04


def test_many_python_producers_exactly_once_in_order():
    channel = ChunkChannel(64)
    producers, per_producer = 16, 2000

    def produce(i: int) -> None:
        p = channel.producer(0, i)
        for seq in range(per_producer):
            p.push(1, seq)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    for t in threads:
        t.start()
    next_seq = [0] * producers
    received = 0
    while received < producers * per_producer:
        batch = channel.drain(256, 10)
        assert batch, "stalled"
        for task, _, seq in batch:
            assert seq == next_seq[task]
            next_seq[task] += 1
            received += 1
    for t in threads:
        t.join()
    assert next_seq == [per_producer] * producers


def test_native_api_misuse_raises_python_errors():
    from ferrograph._core import GraphPlan, Run

    plan = GraphPlan([("k", False)], [("a", False, [])], [("__start__", "a")], [], [], [], [])
    with pytest.raises(IndexError):
        plan.trigger_names(99)
    with pytest.raises(ValueError, match="expected 1 reducers"):
        Run(plan, [], [], 5)
    run = Run(plan, [None], [None], 5)
    run.next_tasks()
    with pytest.raises(ValueError, match="no task 7"):
        run.apply([(7, [])])
    with pytest.raises(ValueError, match="invalid write"):
        run.apply([(0, [(0, 99, None)])])
    with pytest.raises(ValueError, match="Found edge ending at unknown node `b`"):
        GraphPlan([], [("a", False, [])], [("__start__", "a"), ("a", "b")], [], [], [], [])


def test_try_push_never_waits():
    channel = ChunkChannel(1, nodes=[3])
    assert channel.producer(4, 0).try_push(0, "filtered") is False
    producer = channel.producer(3, 0)
    assert producer.try_push(0, "first") is True
    assert producer.try_push(0, "no room") is None  # full: handed back at once
    assert [p for _, _, p in channel.drain(10, 0)] == ["first"]
    channel.close()
    with pytest.raises(ChannelClosed):
        producer.try_push(0, "late")


def test_armed_consumer_is_woken_once_per_batch_from_another_thread():
    channel = ChunkChannel(1024)
    wakes: list[str] = []
    channel.set_waker(lambda: wakes.append(threading.current_thread().name))
    producer = channel.producer(0, 0)
    producer.push(0, "before arming")
    assert channel.arm() is False  # chunks are waiting: drain now, no wake-up promised
    assert len(channel.drain(10, 0)) == 1
    assert channel.arm() is True

    def push_batch() -> None:
        for i in range(200):
            producer.push(0, i)

    pusher = threading.Thread(target=push_batch, name="pusher")
    pusher.start()
    pusher.join()
    assert wakes == ["pusher"]  # one call, on the pushing thread, for 200 chunks
    assert len(channel.drain(1000, 0)) == 200
    assert channel.arm() is True
    channel.close()
    assert wakes == ["pusher", "MainThread"]  # closing wakes an armed consumer too
