//! A bounded many-producer, one-consumer channel for tagged stream chunks.
//!
//! Producers (node threads streaming tokens) push [`Chunk`]s through a [`Producer`] that
//! carries the task's [`Tag`]; the consumer drains them a batch at a time. The subscription
//! is checked on the producer's side, before a chunk takes any capacity, so chunks nobody
//! asked for are dropped where they are made.
//!
//! # Design
//! The buffer is a `crossbeam_queue::ArrayQueue`: pushing and popping are lock-free. A mutex
//! and two condition variables are touched only on the slow paths — a producer finding the
//! queue full, or the consumer finding it empty — so a steady stream never takes a lock.
//!
//! # Invariants
//! 1. The queue never holds more than `capacity` chunks (`ArrayQueue` is fixed-size and a
//!    full push fails rather than grows).
//! 2. Chunks pushed by one producer are drained in the order it pushed them (the queue is
//!    linearizable FIFO and a producer pushes one chunk at a time).
//! 3. No lost wake-ups. A waiter announces itself (`producers_waiting += 1` or
//!    `consumer_waiting = true`), issues a `SeqCst` fence, then re-checks the queue while
//!    holding `lock`, and only then sleeps (the condvar releases `lock` atomically). The
//!    other side changes the queue, issues a `SeqCst` fence, then reads the announcement and,
//!    if set, notifies while holding `lock`. By the fences, either the waiter's re-check sees
//!    the change or the changer sees the announcement; and because notifying needs `lock`,
//!    which the waiter holds from its re-check until it sleeps, the notification cannot fall
//!    between the two.
//! 4. After `close()`, every push fails at once, every blocked producer wakes and gets its
//!    chunk back, and the consumer drains what is left and then sees `Closed`.
//! 5. An event-loop consumer cannot sleep on a condition variable, so it *arms* the channel
//!    instead and is called back through its [`Waker`]. The same fence argument as in 3
//!    holds: the consumer stores `armed = true`, fences, then re-checks the queue; a pusher
//!    queues, fences, then reads `armed`. Whoever then wins `armed.swap(false)` acts: the
//!    pusher calls the waker, or the consumer (its re-check saw a chunk) drains at once. So a
//!    chunk queued while the consumer is armed is never left unannounced, and the waker runs
//!    at most once per arming — once per batch, not once per chunk. A wake-up that finds
//!    nothing (the consumer also won on its re-check) is harmless: it re-arms.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use parking_lot::{Condvar, Mutex};

/// Where a chunk comes from: set once per task, carried by each of its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tag {
    pub node: u32,
    pub task: u64,
    pub step: i64,
    pub namespace: u32,
}

#[derive(Debug)]
pub struct Chunk<T> {
    pub tag: Tag,
    pub mode: u8,
    pub payload: T,
}

/// Which (node, mode) pairs the consumer wants. Built once per run.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Sorted node ids; `None` subscribes every node.
    nodes: Option<Vec<u32>>,
    /// Bit `m` set: mode `m` is wanted.
    modes: u32,
}

impl Subscription {
    pub fn new(nodes: Option<Vec<u32>>, modes: u32) -> Self {
        let nodes = nodes.map(|mut n| {
            n.sort_unstable();
            n.dedup();
            n
        });
        Subscription { nodes, modes }
    }

    pub fn all() -> Self {
        Subscription::new(None, u32::MAX)
    }

    #[inline]
    pub fn allows(&self, node: u32, mode: u8) -> bool {
        (mode < 32 && self.modes & (1 << mode) != 0)
            && self
                .nodes
                .as_ref()
                .is_none_or(|nodes| nodes.binary_search(&node).is_ok())
    }
}

/// Why a push did not queue its chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError<T> {
    /// The channel is closed; the payload is handed back.
    Closed(T),
}

/// What a push did with its chunk.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Pushed {
    Queued,
    /// Nobody subscribed to this (node, mode): the chunk was dropped.
    Filtered,
}

/// What a drain found.
#[derive(Debug)]
pub enum Drain<T> {
    /// At least one chunk, at most the requested number, in queue order.
    Chunks(Vec<Chunk<T>>),
    /// The timeout passed with nothing to drain.
    TimedOut,
    /// The channel is closed and empty.
    Closed,
}

/// Called, from whichever thread pushed, when an armed consumer has chunks (invariant 5).
/// It must not block and must not push to the channel.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

pub struct ChunkChannel<T> {
    queue: ArrayQueue<Chunk<T>>,
    subscription: Subscription,
    closed: AtomicBool,
    producers_waiting: AtomicUsize,
    consumer_waiting: AtomicBool,
    /// When the consumer last went to sleep in `drain`, or armed the channel (an event
    /// loop's sleep): nanoseconds since `epoch`.
    consumer_slept_at: AtomicU64,
    epoch: Instant,
    /// An event-loop consumer is waiting for its waker (invariant 5).
    armed: AtomicBool,
    /// Taken (cloned) under this lock only when `armed` was won, so once per batch; never
    /// called with the lock held.
    waker: Mutex<Option<Waker>>,
    /// Guards only the sleep/notify hand-over (invariant 3); no data lives behind it.
    lock: Mutex<()>,
    space: Condvar,
    chunks: Condvar,
}

impl<T> ChunkChannel<T> {
    pub fn new(capacity: usize, subscription: Subscription) -> Self {
        ChunkChannel {
            queue: ArrayQueue::new(capacity.max(1)),
            subscription,
            closed: AtomicBool::new(false),
            producers_waiting: AtomicUsize::new(0),
            consumer_waiting: AtomicBool::new(false),
            consumer_slept_at: AtomicU64::new(0),
            epoch: Instant::now(),
            armed: AtomicBool::new(false),
            waker: Mutex::new(None),
            lock: Mutex::new(()),
            space: Condvar::new(),
            chunks: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn is_subscribed(&self, node: u32, mode: u8) -> bool {
        self.subscription.allows(node, mode)
    }

    /// A handle that pushes chunks tagged with `tag`.
    pub fn producer(self: &Arc<Self>, tag: Tag) -> Producer<T> {
        Producer {
            channel: Arc::clone(self),
            tag,
        }
    }

    /// Queues a chunk if there is room, without blocking; a full queue hands it back.
    pub fn try_push(&self, chunk: Chunk<T>) -> Result<Pushed, TryPush<T>> {
        if self.is_closed() {
            return Err(TryPush::Closed(chunk.payload));
        }
        if !self.subscription.allows(chunk.tag.node, chunk.mode) {
            return Ok(Pushed::Filtered);
        }
        match self.queue.push(chunk) {
            Ok(()) => {
                self.wake_consumer();
                Ok(Pushed::Queued)
            }
            Err(chunk) => Err(TryPush::Full(chunk)),
        }
    }

    /// Queues a chunk, waiting while the queue is full; fails once the channel closes.
    pub fn push(&self, chunk: Chunk<T>) -> Result<Pushed, PushError<T>> {
        let mut chunk = match self.try_push(chunk) {
            Ok(pushed) => return Ok(pushed),
            Err(TryPush::Closed(payload)) => return Err(PushError::Closed(payload)),
            Err(TryPush::Full(chunk)) => chunk,
        };
        // Slow path: announce, re-check under the lock, sleep (invariant 3).
        self.producers_waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut guard = self.lock.lock();
        let outcome = loop {
            if self.is_closed() {
                break Err(PushError::Closed(chunk.payload));
            }
            match self.queue.push(chunk) {
                Ok(()) => break Ok(Pushed::Queued),
                Err(back) => chunk = back,
            }
            self.space.wait(&mut guard);
        };
        drop(guard);
        self.producers_waiting.fetch_sub(1, Ordering::SeqCst);
        if outcome.is_ok() {
            self.wake_consumer();
        }
        outcome
    }

    fn wake_consumer(&self) {
        fence(Ordering::SeqCst);
        if self.consumer_waiting.load(Ordering::SeqCst) {
            let _guard = self.lock.lock();
            self.chunks.notify_one();
        }
        // The plain load keeps the common case (not armed) free of a read-modify-write.
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            self.call_waker();
        }
    }

    fn call_waker(&self) {
        let waker = self.waker.lock().clone();
        if let Some(waker) = waker {
            waker();
        }
    }

    /// Sets (or with `None` removes) the callback that wakes an armed consumer.
    pub fn set_waker(&self, waker: Option<Waker>) {
        *self.waker.lock() = waker;
    }

    /// For a consumer that cannot block (an event loop): asks to be woken through the
    /// waker once a chunk arrives or the channel closes. Returns false when there is no
    /// need to wait — chunks are already there or the channel is closed — so the consumer
    /// drains at once; true when the waker will run (invariant 5).
    pub fn arm(&self) -> bool {
        self.consumer_slept_at
            .store(self.nanos_since_epoch(), Ordering::Relaxed);
        self.armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.queue.is_empty() && !self.is_closed() {
            return true;
        }
        // Something is there: disarm. Losing the swap means a pusher took the wake-up and
        // calls the waker anyway (a spurious wake the consumer tolerates).
        self.armed.swap(false, Ordering::SeqCst);
        false
    }

    /// Takes up to `max` chunks without waiting (empty when there are none).
    pub fn drain_now(&self, max: usize) -> Vec<Chunk<T>> {
        let mut batch = Vec::new();
        while batch.len() < max.max(1) {
            match self.queue.pop() {
                Some(chunk) => batch.push(chunk),
                None => break,
            }
        }
        if !batch.is_empty() {
            self.wake_producers();
        }
        batch
    }

    fn wake_producers(&self) {
        fence(Ordering::SeqCst);
        if self.producers_waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.space.notify_all();
        }
    }

    /// Takes up to `max` chunks, waiting up to `timeout` (forever: `None`) for the first.
    pub fn drain(&self, max: usize, timeout: Option<Duration>) -> Drain<T> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let batch = self.drain_now(max);
            if !batch.is_empty() {
                return Drain::Chunks(batch);
            }
            if self.is_closed() {
                // A producer may have queued between the pop and the close: look once more.
                if self.queue.is_empty() {
                    return Drain::Closed;
                }
                continue;
            }
            // Slow path: announce, re-check under the lock, sleep (invariant 3).
            self.consumer_slept_at
                .store(self.nanos_since_epoch(), Ordering::Relaxed);
            self.consumer_waiting.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let mut guard = self.lock.lock();
            let timed_out = if self.queue.is_empty() && !self.is_closed() {
                match deadline {
                    Some(deadline) => self.chunks.wait_until(&mut guard, deadline).timed_out(),
                    None => {
                        self.chunks.wait(&mut guard);
                        false
                    }
                }
            } else {
                false
            };
            drop(guard);
            self.consumer_waiting.store(false, Ordering::SeqCst);
            if timed_out && self.queue.is_empty() && !self.is_closed() {
                return Drain::TimedOut;
            }
        }
    }

    fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// How long the consumer has been asleep in `drain`, or armed waiting for its waker,
    /// waiting for chunks (None: it is not). Read without synchronisation: a hint, for
    /// deciding whether to hand it a shared resource (the GIL) rather than keep going.
    pub fn consumer_asleep_for(&self) -> Option<Duration> {
        if !self.consumer_waiting.load(Ordering::Relaxed) && !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let slept_at = self.consumer_slept_at.load(Ordering::Relaxed);
        Some(Duration::from_nanos(
            self.nanos_since_epoch().saturating_sub(slept_at),
        ))
    }

    /// Closes the channel: pushes fail from now on and every waiter wakes. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        {
            let _guard = self.lock.lock();
            self.space.notify_all();
            self.chunks.notify_all();
        }
        fence(Ordering::SeqCst);
        if self.armed.swap(false, Ordering::SeqCst) {
            self.call_waker();
        }
        // The consumer is told; dropping the waker breaks any cycle through it (a waker
        // that refers back to whatever owns this channel).
        self.set_waker(None);
    }
}

/// A non-blocking push that found no room (or a closed channel).
#[derive(Debug)]
pub enum TryPush<T> {
    Full(Chunk<T>),
    Closed(T),
}

/// Pushes chunks carrying one task's tag.
pub struct Producer<T> {
    channel: Arc<ChunkChannel<T>>,
    tag: Tag,
}

impl<T> Producer<T> {
    pub fn tag(&self) -> Tag {
        self.tag
    }

    pub fn channel(&self) -> &Arc<ChunkChannel<T>> {
        &self.channel
    }

    pub fn subscribed(&self, mode: u8) -> bool {
        self.channel.is_subscribed(self.tag.node, mode)
    }

    pub fn chunk(&self, mode: u8, payload: T) -> Chunk<T> {
        Chunk {
            tag: self.tag,
            mode,
            payload,
        }
    }

    pub fn push(&self, mode: u8, payload: T) -> Result<Pushed, PushError<T>> {
        self.channel.push(self.chunk(mode, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn tag(node: u32, task: u64) -> Tag {
        Tag {
            node,
            task,
            ..Default::default()
        }
    }

    fn channel(capacity: usize) -> Arc<ChunkChannel<u64>> {
        Arc::new(ChunkChannel::new(capacity, Subscription::all()))
    }

    fn drain_all(ch: &ChunkChannel<u64>) -> Vec<Chunk<u64>> {
        match ch.drain(usize::MAX, Some(Duration::from_millis(0))) {
            Drain::Chunks(c) => c,
            _ => Vec::new(),
        }
    }

    #[test]
    fn tells_how_long_the_consumer_has_been_asleep() {
        let ch = channel(4);
        assert_eq!(ch.consumer_asleep_for(), None);
        let consumer = {
            let ch = Arc::clone(&ch);
            thread::spawn(move || ch.drain(8, Some(Duration::from_secs(10))))
        };
        while ch.consumer_asleep_for().is_none() {
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(20));
        assert!(ch.consumer_asleep_for().unwrap() >= Duration::from_millis(20));
        ch.producer(tag(1, 1)).push(2, 9).unwrap();
        assert!(matches!(consumer.join().unwrap(), Drain::Chunks(c) if c.len() == 1));
        assert_eq!(ch.consumer_asleep_for(), None);
    }

    #[test]
    fn tells_how_long_an_armed_consumer_has_been_asleep() {
        let ch = channel(4);
        ch.set_waker(Some(Arc::new(|| {})));
        assert!(ch.arm());
        thread::sleep(Duration::from_millis(20));
        assert!(ch.consumer_asleep_for().unwrap() >= Duration::from_millis(20));
        ch.producer(tag(1, 1)).push(2, 9).unwrap(); // takes the wake-up: no longer armed
        assert_eq!(ch.consumer_asleep_for(), None);
    }

    #[test]
    fn round_trip_in_order_with_tags() {
        let ch = channel(8);
        let p = ch.producer(tag(3, 7));
        for i in 0..5 {
            assert_eq!(p.push(2, i), Ok(Pushed::Queued));
        }
        let got = drain_all(&ch);
        assert_eq!(
            got.iter().map(|c| c.payload).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert!(got.iter().all(|c| c.tag == tag(3, 7) && c.mode == 2));
    }

    #[test]
    fn drain_respects_max_and_times_out_when_empty() {
        let ch = channel(8);
        let p = ch.producer(tag(0, 0));
        for i in 0..5 {
            p.push(0, i).unwrap();
        }
        match ch.drain(2, None) {
            Drain::Chunks(c) => assert_eq!(c.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(drain_all(&ch).len(), 3);
        let start = Instant::now();
        assert!(matches!(
            ch.drain(10, Some(Duration::from_millis(30))),
            Drain::TimedOut
        ));
        assert!(start.elapsed() >= Duration::from_millis(25));
    }

    #[test]
    fn filtered_chunks_take_no_capacity() {
        let ch = Arc::new(ChunkChannel::new(
            1,
            Subscription::new(Some(vec![5]), 1 << 2),
        ));
        let other_node = ch.producer(tag(4, 0));
        let wanted = ch.producer(tag(5, 0));
        assert_eq!(other_node.push(2, 1), Ok(Pushed::Filtered));
        assert_eq!(
            wanted.push(3, 1),
            Ok(Pushed::Filtered),
            "mode not subscribed"
        );
        assert_eq!(wanted.push(2, 9), Ok(Pushed::Queued));
        assert!(ch.is_subscribed(5, 2) && !ch.is_subscribed(4, 2) && !ch.is_subscribed(5, 3));
        assert_eq!(ch.len(), 1);
    }

    #[test]
    fn close_releases_blocked_producers_with_their_payload() {
        let ch = channel(1);
        ch.producer(tag(0, 0)).push(0, 1).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let p = ch.producer(tag(0, i));
                thread::spawn(move || p.push(0, 100 + i))
            })
            .collect();
        while ch.producers_waiting.load(Ordering::SeqCst) < 4 {
            thread::yield_now();
        }
        ch.close();
        let mut returned: Vec<u64> = handles
            .into_iter()
            .map(|h| match h.join().unwrap() {
                Err(PushError::Closed(v)) => v,
                Ok(p) => panic!("pushed after close: {p:?}"),
            })
            .collect();
        returned.sort_unstable();
        assert_eq!(returned, vec![100, 101, 102, 103]);
        // What was queued before the close is still delivered, then Closed.
        assert!(matches!(ch.drain(10, None), Drain::Chunks(c) if c.len() == 1));
        assert!(matches!(ch.drain(10, None), Drain::Closed));
        assert_eq!(ch.producer(tag(0, 0)).push(0, 5), Err(PushError::Closed(5)));
    }

    #[test]
    fn close_wakes_a_waiting_consumer() {
        let ch = channel(4);
        let waiter = {
            let ch = Arc::clone(&ch);
            thread::spawn(move || matches!(ch.drain(10, None), Drain::Closed))
        };
        while !ch.consumer_waiting.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        ch.close();
        assert!(waiter.join().unwrap());
    }

    /// `producers` threads, producer `p` (node and task `p`) pushing `0..per_producer`.
    fn spawn_producers(
        ch: &Arc<ChunkChannel<u64>>,
        producers: u64,
        per_producer: u64,
    ) -> Vec<thread::JoinHandle<()>> {
        (0..producers)
            .map(|p| {
                let producer = ch.producer(tag(p as u32, p));
                thread::spawn(move || {
                    for seq in 0..per_producer {
                        producer.push(1, seq).unwrap();
                    }
                })
            })
            .collect()
    }

    fn counting_waker(ch: &ChunkChannel<u64>) -> Arc<AtomicUsize> {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        ch.set_waker(Some(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })));
        calls
    }

    #[test]
    fn armed_consumer_is_woken_once_per_batch() {
        let ch = channel(64);
        let wakes = counting_waker(&ch);
        let p = ch.producer(tag(0, 0));
        // Nothing pushed while not armed wakes anybody.
        p.push(0, 1).unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 0);
        // Chunks already there: arming refuses, the consumer drains at once.
        assert!(!ch.arm());
        assert_eq!(ch.drain_now(10).len(), 1);
        assert!(ch.arm());
        for i in 0..10 {
            p.push(0, i).unwrap();
        }
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            1,
            "one wake-up for the whole batch"
        );
        assert_eq!(ch.drain_now(100).len(), 10);
        assert!(ch.drain_now(100).is_empty());
    }

    #[test]
    fn close_wakes_an_armed_consumer_and_drops_the_waker() {
        let ch = channel(4);
        let wakes = counting_waker(&ch);
        assert!(ch.arm());
        ch.close();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(!ch.arm(), "a closed channel never makes the consumer wait");
        assert_eq!(
            Arc::strong_count(&wakes),
            1,
            "the waker was dropped on close"
        );
    }

    /// An event-loop consumer (arm, then sleep until woken) against many producers: no
    /// chunk is ever left unannounced (the consumer would sleep forever with chunks queued,
    /// caught by the timeout), and every chunk arrives exactly once, in order per producer.
    #[test]
    fn stress_armed_consumer_never_misses_a_wake_up() {
        const PRODUCERS: u64 = 4;
        const PER_PRODUCER: u64 = 20_000;
        let ch = channel(8);
        let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
        let wake_tx = Mutex::new(wake_tx);
        ch.set_waker(Some(Arc::new(move || {
            let _ = wake_tx.lock().send(());
        })));
        let handles = spawn_producers(&ch, PRODUCERS, PER_PRODUCER);
        let mut next = vec![0u64; PRODUCERS as usize];
        let mut received = 0;
        while received < PRODUCERS * PER_PRODUCER {
            let batch = ch.drain_now(5);
            if batch.is_empty() {
                if ch.arm() {
                    wake_rx
                        .recv_timeout(Duration::from_secs(10))
                        .unwrap_or_else(|_| panic!("lost wake-up after {received} chunks"));
                }
                continue;
            }
            for c in batch {
                let p = c.tag.task as usize;
                assert_eq!(c.payload, next[p], "producer {p} out of order");
                next[p] += 1;
                received += 1;
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(next.iter().all(|&n| n == PER_PRODUCER));
    }

    /// Many producers, a tiny capacity and a consumer that drains in small batches:
    /// every chunk arrives exactly once, in order per producer, and the queue never holds
    /// more than its capacity.
    #[test]
    fn stress_many_producers_exactly_once_in_order() {
        const PRODUCERS: u64 = 8;
        const PER_PRODUCER: u64 = 20_000;
        const CAPACITY: usize = 16;
        let ch = channel(CAPACITY);
        let handles = spawn_producers(&ch, PRODUCERS, PER_PRODUCER);
        let mut next = vec![0u64; PRODUCERS as usize];
        let mut received = 0;
        let mut max_len = 0;
        while received < PRODUCERS * PER_PRODUCER {
            max_len = max_len.max(ch.len());
            if let Drain::Chunks(batch) = ch.drain(7, Some(Duration::from_secs(10))) {
                for c in batch {
                    let p = c.tag.task as usize;
                    assert_eq!(c.payload, next[p], "producer {p} out of order");
                    next[p] += 1;
                    received += 1;
                }
            } else {
                panic!("stalled after {received} chunks");
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(next.iter().all(|&n| n == PER_PRODUCER));
        assert!(max_len <= CAPACITY);
        assert!(matches!(
            ch.drain(1, Some(Duration::from_millis(1))),
            Drain::TimedOut
        ));
    }

    /// Producers racing a close: each push either lands (and is drained exactly once) or is
    /// handed back; nothing is lost, duplicated or left blocked.
    #[test]
    fn stress_close_during_pushes() {
        for _ in 0..20 {
            let ch = channel(4);
            let handles: Vec<_> = (0..4)
                .map(|p| {
                    let producer = ch.producer(tag(0, p));
                    thread::spawn(move || {
                        let mut queued = 0u64;
                        for seq in 0..1_000u64 {
                            match producer.push(0, seq) {
                                Ok(_) => queued += 1,
                                Err(PushError::Closed(v)) => {
                                    assert_eq!(v, seq);
                                    break;
                                }
                            }
                        }
                        queued
                    })
                })
                .collect();
            let mut drained = 0u64;
            for _ in 0..50 {
                if let Drain::Chunks(c) = ch.drain(3, Some(Duration::from_millis(1))) {
                    drained += c.len() as u64;
                }
            }
            ch.close();
            // A push that checked `closed` just before the close may still land, so the
            // producers are joined (close released them) before the last drain.
            let queued: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            loop {
                match ch.drain(64, None) {
                    Drain::Chunks(c) => drained += c.len() as u64,
                    Drain::Closed => break,
                    Drain::TimedOut => unreachable!(),
                }
            }
            assert_eq!(queued, drained);
        }
    }
}
