//! The bookkeeping of a step's crew that needs no Python: which tasks no runner has taken yet,
//! and how many workers may still be hired.
//!
//! A step's tasks (by index) are shared between the calling thread and workers hired while
//! tasks are waiting; `max_concurrency` caps the runners, the caller included, so at most
//! `limit - 1` workers are hired. When to hire and how a worker is started is the crew's
//! business (`python::crew`); this only answers "which task next?" and "may one more worker
//! be hired?", both safe to ask from any thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// The claim queue and the hiring cap of one step.
pub struct Claims {
    /// Indexes of the tasks no runner has taken yet, in the order they are handed out.
    unclaimed: Mutex<VecDeque<usize>>,
    /// Hires attempted so far: the first `helpers` succeed, every later one fails.
    hired: AtomicUsize,
    /// The most workers the step may hire (the caller is not one of them).
    helpers: usize,
}

impl Claims {
    /// `count` tasks, at most `limit` runners at once (None: no cap; a limit below 1 counts
    /// as 1, the caller alone).
    pub fn new(count: usize, limit: Option<usize>) -> Self {
        Claims {
            unclaimed: Mutex::new((0..count).collect()),
            hired: AtomicUsize::new(0),
            helpers: helpers(count, limit),
        }
    }

    /// `count` tasks that workers alone run (the caller runs none), at most `limit` at once
    /// (None: no cap; below 1 counts as 1).
    pub fn workers_only(count: usize, limit: Option<usize>) -> Self {
        Claims {
            unclaimed: Mutex::new((0..count).collect()),
            hired: AtomicUsize::new(0),
            helpers: limit.unwrap_or(count).max(1).min(count),
        }
    }

    /// The most workers the step may hire.
    pub fn helpers(&self) -> usize {
        self.helpers
    }

    /// The next task no runner has taken, now taken; None once every task is.
    pub fn claim(&self) -> Option<usize> {
        self.unclaimed.lock().pop_front()
    }

    /// Whether one more worker should be started: a task is waiting and the cap allows it.
    /// True takes one place under the cap for good (a worker that then finds nothing left to
    /// claim still counts).
    pub fn hire(&self) -> bool {
        // The look at the queue and the count are not one atomic step, and need not be: a
        // task claimed in between only leaves a hired worker with nothing to do, and the cap
        // holds regardless, as it depends on the count alone.
        if self.unclaimed.lock().is_empty() {
            return false;
        }
        // Relaxed is enough: `fetch_add` is one atomic read-modify-write, so every attempt
        // gets a ticket of its own and exactly the first `helpers` tickets are below the cap,
        // whatever the threads' order. The counter guards no other data (the queue has its
        // own lock; a hired worker is handed its work by whoever starts it, which
        // synchronises). Failed attempts go on counting, harmlessly: a wrap would take 2^64
        // of them, and each costs a task claimed or a look by the scout.
        self.hired.fetch_add(1, Ordering::Relaxed) < self.helpers
    }

    /// Drops every unclaimed task: nothing more starts (after a failure, or an early exit).
    /// Clears the unclaimed tasks; returns how many there were (tasks that never start).
    pub fn close(&self) -> usize {
        let mut unclaimed = self.unclaimed.lock();
        let never = unclaimed.len();
        unclaimed.clear();
        never
    }
}

/// How many workers `count` tasks may hire under `limit` runners (the caller is one).
pub fn helpers(count: usize, limit: Option<usize>) -> usize {
    // `clamp(1, count)` would panic for no tasks: min then max gives 0 workers there.
    limit.unwrap_or(count).min(count).max(1) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn helpers_leave_a_place_for_the_caller() {
        assert_eq!(helpers(0, None), 0);
        assert_eq!(helpers(0, Some(4)), 0);
        assert_eq!(helpers(1, None), 0);
        assert_eq!(helpers(5, None), 4);
        assert_eq!(helpers(5, Some(0)), 0);
        assert_eq!(helpers(5, Some(1)), 0);
        assert_eq!(helpers(5, Some(3)), 2);
        assert_eq!(helpers(5, Some(5)), 4);
        assert_eq!(helpers(5, Some(50)), 4);
        // As the direct driver has always computed it, wherever that is defined.
        for count in 1..20 {
            for limit in 1..25 {
                assert_eq!(helpers(count, Some(limit)), limit.clamp(1, count) - 1);
            }
            assert_eq!(helpers(count, None), count - 1);
        }
    }

    #[test]
    fn claims_come_in_order_then_run_out() {
        let claims = Claims::new(3, None);
        assert_eq!(claims.claim(), Some(0));
        assert_eq!(claims.claim(), Some(1));
        assert_eq!(claims.claim(), Some(2));
        assert_eq!(claims.claim(), None);
        assert_eq!(claims.claim(), None);
    }

    #[test]
    fn hiring_stops_at_the_cap() {
        let claims = Claims::new(10, Some(3));
        assert_eq!(claims.helpers(), 2);
        assert!(claims.hire());
        assert!(claims.hire());
        assert!(!claims.hire());
        assert!(!claims.hire());
        assert_eq!(claims.claim(), Some(0)); // the cap does not limit claims
    }

    #[test]
    fn no_hire_once_nothing_is_waiting() {
        let claims = Claims::new(2, None);
        assert_eq!(claims.helpers(), 1);
        claims.claim();
        claims.claim();
        assert!(!claims.hire());
        // A refused look at an empty queue takes no place under the cap.
        assert_eq!(claims.hired.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn close_drops_what_is_unclaimed() {
        let claims = Claims::new(4, None);
        assert_eq!(claims.claim(), Some(0));
        claims.close();
        assert_eq!(claims.claim(), None);
        assert!(!claims.hire());
    }

    #[test]
    fn a_single_runner_hires_nobody() {
        let claims = Claims::new(1, None);
        assert!(!claims.hire());
        let claims = Claims::new(4, Some(1));
        assert!(!claims.hire());
    }

    #[test]
    fn racing_threads_claim_each_task_once() {
        const THREADS: usize = 8;
        const TASKS: usize = 10_000;
        let claims = Claims::new(TASKS, Some(4));
        let start = Barrier::new(THREADS);
        let mut claimed: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let mut mine = Vec::new();
                        while let Some(index) = claims.claim() {
                            claims.hire(); // interleaved, as workers do
                            mine.push(index);
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("no panic"))
                .collect()
        });
        claimed.sort_unstable();
        assert_eq!(claimed, (0..TASKS).collect::<Vec<_>>());
    }

    #[test]
    fn racing_hires_respect_the_cap() {
        const THREADS: usize = 8;
        const TRIES: usize = 1_000;
        let claims = Claims::new(100, Some(4));
        let start = Barrier::new(THREADS);
        let hires: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        (0..TRIES).filter(|_| claims.hire()).count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum()
        });
        assert_eq!(hires, 3);
    }
}
