//! Bindings for the chunk channel. Payloads are Python objects, held (never copied). Waiting
//! (a full channel for producers, an empty one for the consumer) happens with the GIL
//! released, so the other side can run; the fast paths never release it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::stream::{
    Chunk, ChunkChannel as Channel, Drain, PushError, Pushed, Subscription, Tag, TryPush,
};

create_exception!(
    _core,
    ChannelClosed,
    PyRuntimeError,
    "The stream was closed (its consumer stopped or the run ended)."
);

type Payload = Py<PyAny>;

/// A bounded channel of `(task, mode, payload)` chunks from many threads to one consumer.
#[pyclass(frozen, module = "ferrograph._core")]
pub struct ChunkChannel {
    inner: Arc<Channel<Payload>>,
    /// The longest the consumer waited to take the GIL back after a drain that slept, in
    /// nanoseconds, since `take_gil_wait` last read it (`NO_GIL_WAIT`: no such drain).
    gil_wait: AtomicU64,
    handover: Arc<Handover>,
}

/// A producer that wakes a consumer which has waited a while hands it the GIL (see
/// `ChunkProducer::push`); the consumer counts here each time it has taken the GIL back.
struct Handover {
    taken: Mutex<u64>,
    changed: Condvar,
    /// Producers handing the GIL over right now: an event loop's drain that finds chunks
    /// without waiting counts in `taken` only when one is (its hot path takes no lock).
    awaiting: AtomicUsize,
    /// When a producer last handed the GIL over: nanoseconds since `epoch`.
    last: AtomicU64,
    epoch: Instant,
}

impl Handover {
    fn new() -> Self {
        Handover {
            taken: Mutex::new(0),
            changed: Condvar::new(),
            awaiting: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Claims the next hand-over unless one happened within `HAND_OVER_EVERY` (racy
    /// between producers, which at worst hand over twice).
    fn claim(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < HAND_OVER_EVERY.as_nanos() as u64 {
            return false;
        }
        self.last.store(now.max(1), Ordering::Relaxed);
        true
    }
}

/// A consumer asleep this long gets the GIL handed over by the producer that wakes it.
const HAND_OVER_AFTER: Duration = Duration::from_micros(200);
/// How long that producer waits, GIL released, for the consumer to take it.
const HAND_OVER_WAIT: Duration = Duration::from_millis(2);
/// At most one hand-over per switch interval: when the wake-up latency of threads alone
/// exceeds `HAND_OVER_AFTER` (a loaded machine), a steady stream would otherwise hand the
/// GIL over for every chunk instead of letting them gather into batches.
const HAND_OVER_EVERY: Duration = Duration::from_millis(5);

const NO_GIL_WAIT: u64 = u64::MAX;

#[pymethods]
impl ChunkChannel {
    /// `nodes=None` subscribes every node; `modes` is a bitmask of subscribed modes.
    #[new]
    #[pyo3(signature = (capacity=4096, nodes=None, modes=u32::MAX))]
    fn new(capacity: usize, nodes: Option<Vec<u32>>, modes: u32) -> Self {
        ChunkChannel {
            inner: Arc::new(Channel::new(capacity, Subscription::new(nodes, modes))),
            gil_wait: AtomicU64::new(NO_GIL_WAIT),
            handover: Arc::new(Handover::new()),
        }
    }

    fn is_subscribed(&self, node: u32, mode: u8) -> bool {
        self.inner.is_subscribed(node, mode)
    }

    /// A producer whose chunks carry this tag.
    #[pyo3(signature = (node, task, step=0, namespace=0))]
    fn producer(&self, node: u32, task: u64, step: i64, namespace: u32) -> ChunkProducer {
        ChunkProducer {
            inner: self.inner.producer(Tag {
                node,
                task,
                step,
                namespace,
            }),
            handover: Arc::clone(&self.handover),
        }
    }

    /// Up to `max_items` chunks as a list of `(task, mode, payload)`, waiting up to
    /// `timeout` seconds (forever: None) for the first; `[]` on timeout; None once closed
    /// and empty.
    #[pyo3(signature = (max_items=1024, timeout=None))]
    fn drain<'py>(
        &self,
        py: Python<'py>,
        max_items: usize,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        // Fast path: something is there already, take it without releasing the GIL.
        let drained = match self.inner.drain(max_items, Some(Duration::ZERO)) {
            Drain::TimedOut if timeout != Some(0.0) => {
                let timeout = timeout.map(|t| Duration::from_secs_f64(t.max(0.0)));
                let inner = &self.inner;
                let (drained, woke) =
                    py.detach(|| (inner.drain(max_items, timeout), Instant::now()));
                // How busy the interpreter was: a free GIL is taken back at once, one that
                // threads keep busy only after the interpreter's switch interval.
                let waited = u64::try_from(woke.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
                let seen = self.gil_wait.load(Ordering::Relaxed);
                if seen == NO_GIL_WAIT || waited > seen {
                    self.gil_wait.store(waited, Ordering::Relaxed); // only the consumer drains
                }
                *self.handover.taken.lock() += 1;
                self.handover.changed.notify_all();
                drained
            }
            other => {
                // An event loop drains without waiting, once its waker ran: if a producer is
                // handing it the GIL (`ChunkProducer::push`), it has it now. (The producer
                // counts itself in `awaiting` before it pushes, so a drain that takes its
                // chunk sees it.)
                if self.handover.awaiting.load(Ordering::SeqCst) > 0 {
                    *self.handover.taken.lock() += 1;
                    self.handover.changed.notify_all();
                }
                other
            }
        };
        match drained {
            Drain::Chunks(chunks) => {
                let items = chunks
                    .into_iter()
                    .map(|c| (c.tag.task, c.mode, c.payload))
                    .map(|item| item.into_pyobject(py))
                    .collect::<PyResult<Vec<Bound<'py, PyTuple>>>>()?;
                Ok(Some(PyList::new(py, items)?))
            }
            Drain::TimedOut => Ok(Some(PyList::empty(py))),
            Drain::Closed => Ok(None),
        }
    }

    /// The longest the consumer waited for the GIL after a drain that released it, in
    /// seconds, since the last call (None: no drain released it since).
    fn take_gil_wait(&self) -> Option<f64> {
        match self.gil_wait.swap(NO_GIL_WAIT, Ordering::Relaxed) {
            NO_GIL_WAIT => None,
            nanos => Some(nanos as f64 / 1e9),
        }
    }

    /// For an event-loop consumer: `waker()` is called (from the pushing thread, with the
    /// GIL) once chunks arrive after `arm()` returned True, or when the channel closes. It
    /// must only schedule work (e.g. `loop.call_soon_threadsafe`). None removes it.
    fn set_waker(&self, waker: Option<Py<PyAny>>) {
        self.inner.set_waker(waker.map(|callable| {
            Arc::new(move || {
                Python::attach(|py| {
                    if let Err(err) = callable.call0(py) {
                        err.write_unraisable(py, None);
                    }
                })
            }) as crate::stream::Waker
        }));
    }

    /// True: nothing to drain, the waker will run when there is. False: drain now.
    fn arm(&self) -> bool {
        self.inner.arm()
    }

    /// Closes the channel: blocked producers raise `ChannelClosed`, the consumer sees None.
    fn close(&self) {
        self.inner.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// Pushes one task's chunks.
#[pyclass(frozen, module = "ferrograph._core")]
pub struct ChunkProducer {
    inner: crate::stream::Producer<Payload>,
    handover: Arc<Handover>,
}

#[pymethods]
impl ChunkProducer {
    /// Queues `payload` as a chunk of `mode`: True if queued, False if nobody subscribed.
    /// Waits (GIL released) while the channel is full; raises `ChannelClosed` once closed.
    ///
    /// A consumer that has been waiting a while (`HAND_OVER_AFTER`), asleep in `drain` or an
    /// event loop that armed the channel, is handed the GIL: the producer releases it until
    /// the consumer has taken it (or `HAND_OVER_WAIT`), instead
    /// of keeping it until the interpreter's switch interval (5 ms) makes it let go. So the
    /// first token of a run, or of a quiet stream, reaches the consumer at once, while a
    /// steady stream is still drained in batches (its consumer is never asleep for long,
    /// and hand-overs are at most one per `HAND_OVER_EVERY`).
    fn push(&self, py: Python<'_>, mode: u8, payload: Payload) -> PyResult<bool> {
        let channel = self.inner.channel();
        let handing_over = channel
            .consumer_asleep_for()
            .is_some_and(|slept| slept >= HAND_OVER_AFTER)
            .then(|| self.handover.claim().then(|| *self.handover.taken.lock()))
            .flatten();
        let handover = &self.handover;
        if handing_over.is_some() {
            handover.awaiting.fetch_add(1, Ordering::SeqCst);
        }
        let outcome = self.push_chunk(py, mode, payload);
        if let (Some(taken), Ok(true)) = (handing_over, &outcome) {
            py.detach(|| {
                let mut now = handover.taken.lock();
                if *now == taken {
                    handover.changed.wait_for(&mut now, HAND_OVER_WAIT);
                }
            });
        }
        if handing_over.is_some() {
            handover.awaiting.fetch_sub(1, Ordering::SeqCst);
        }
        outcome
    }

    /// `push` that never waits: True if queued, False if nobody subscribed, None if the
    /// channel is full (for producers on the consumer's own event loop, which must not block
    /// it); raises `ChannelClosed` once closed.
    fn try_push(&self, mode: u8, payload: Payload) -> PyResult<Option<bool>> {
        match self
            .inner
            .channel()
            .try_push(self.inner.chunk(mode, payload))
        {
            Ok(Pushed::Queued) => Ok(Some(true)),
            Ok(Pushed::Filtered) => Ok(Some(false)),
            Err(TryPush::Full(_chunk)) => Ok(None),
            Err(TryPush::Closed(_payload)) => Err(closed_error()),
        }
    }

    fn subscribed(&self, mode: u8) -> bool {
        self.inner.subscribed(mode)
    }
}

impl ChunkProducer {
    fn push_chunk(&self, py: Python<'_>, mode: u8, payload: Payload) -> PyResult<bool> {
        let chunk: Chunk<Payload> = self.inner.chunk(mode, payload);
        let outcome = match self.inner.channel().try_push(chunk) {
            Ok(pushed) => Ok(pushed),
            Err(TryPush::Closed(payload)) => Err(PushError::Closed(payload)),
            Err(TryPush::Full(chunk)) => {
                let channel = self.inner.channel();
                py.detach(|| channel.push(chunk))
            }
        };
        match outcome {
            Ok(Pushed::Queued) => Ok(true),
            Ok(Pushed::Filtered) => Ok(false),
            Err(PushError::Closed(_payload)) => Err(closed_error()),
        }
    }
}

fn closed_error() -> PyErr {
    ChannelClosed::new_err("the stream was closed: its consumer stopped or the run ended")
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ChunkChannel>()?;
    m.add_class::<ChunkProducer>()?;
    m.add("ChannelClosed", m.py().get_type::<ChannelClosed>())?;
    Ok(())
}
