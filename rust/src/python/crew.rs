//! A step's crew: the one recruiting policy both drivers share a step's tasks out by.
//!
//! The calling thread runs tasks itself, taking them from the step's claim queue; workers are
//! recruited only once the step proves slow: the scout (`DEFAULT_SCOUT`), looking a poll
//! later and only once it gets the GIL (when the caller blocks in a node, or after the switch
//! interval), finds tasks still unclaimed and recruits two workers, and each worker that
//! claims a task recruits two more before running it. So the crew doubles while work is
//! waiting (1,000 blocking branches are all running after about ten wake-ups) and a cheap
//! step costs no wake-up at all. `max_concurrency` caps the runners, the caller included.
//!
//! This module owns that policy ([`Crew`], [`StepCrew`]) over [`Claims`], generic over what
//! running task `i` means ([`CrewWork`]): the direct driver's [`super::direct`] step records
//! outcomes in Rust; the streaming driver's [`PyCrew`] (`ferrograph._core.Crew`) calls a
//! Python callable.

use std::sync::{Arc, Weak};

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::intern;
use pyo3::prelude::*;

use crate::claims::Claims;

/// A step's claim queue and hiring cap, and the pool its workers are submitted to.
pub struct Crew {
    claims: Claims,
    /// The worker pool's `submit(fn)`; `fn` must not raise.
    submit: Py<PyAny>,
}

impl Crew {
    /// A crew for `count` tasks, at most `limit` runners at once (the caller included).
    pub fn new(count: usize, limit: Option<usize>, submit: Py<PyAny>) -> Self {
        Crew {
            claims: Claims::new(count, limit),
            submit,
        }
    }

    /// A crew of workers alone for `count` tasks (the caller runs none), at most `limit` at
    /// once.
    pub fn workers_only(count: usize, limit: Option<usize>, submit: Py<PyAny>) -> Self {
        Crew {
            claims: Claims::workers_only(count, limit),
            submit,
        }
    }

    /// How many workers the crew may recruit.
    pub fn helpers(&self) -> usize {
        self.claims.helpers()
    }

    /// The next unclaimed task, now claimed.
    pub fn claim(&self) -> Option<usize> {
        self.claims.claim()
    }

    /// Clears the unclaimed tasks: nothing more starts. Returns how many never will.
    pub fn close(&self) -> usize {
        self.claims.close()
    }
}

/// What a crew's runners do: run task `index` of the step the crew belongs to.
pub trait CrewWork: Send + Sync + 'static {
    fn crew(&self) -> &Crew;
    /// Runs task `index` and records its outcome; must not fail (a worker has no one to tell).
    fn run(&self, py: Python<'_>, index: usize);
}

/// Asks the pool for up to `wanted` workers while tasks are unclaimed and the cap allows.
pub fn recruit(step: &Arc<dyn CrewWork>, py: Python<'_>, wanted: usize) -> PyResult<()> {
    let crew = step.crew();
    let submit = crew.submit.bind(py);
    for _ in 0..wanted {
        if !crew.claims.hire() {
            return Ok(());
        }
        let worker = Bound::new(
            py,
            StepCrew {
                step: Arc::downgrade(step),
            },
        )?;
        submit.call1((worker.getattr(intern!(py, "work"))?,))?;
    }
    Ok(())
}

/// The handle workers and the scout hold on a step. Weak: the scout looks at a step a little
/// after it was asked to, and a step that has ended by then (most of them) must not be kept
/// alive, inputs, configs and outcomes, for the collector to find; nor by a worker the pool
/// keeps hold of after its work is done, nor by a worker that starts after the step ended.
#[pyclass(frozen, module = "ferrograph._core")]
pub struct StepCrew {
    step: Weak<dyn CrewWork>,
}

impl StepCrew {
    /// A handle on `step` that does not keep it alive.
    pub fn of<W: CrewWork>(step: &Arc<W>) -> Self {
        let step: Weak<W> = Arc::downgrade(step);
        StepCrew { step }
    }
}

#[pymethods]
impl StepCrew {
    /// On a worker: runs unclaimed tasks until none is left, recruiting as it goes.
    fn work(&self, py: Python<'_>) {
        let Some(step) = self.step.upgrade() else {
            return; // the step ended before this worker started
        };
        while let Some(index) = step.crew().claim() {
            // A worker that cannot recruit still runs its task; the step is not lost.
            let _ = recruit(&step, py, 2);
            step.run(py, index);
        }
    }

    /// For the scout (which calls the crew itself: no bound method to allocate and keep):
    /// workers for whatever is still waiting.
    fn __call__(&self, py: Python<'_>) {
        if let Some(step) = self.step.upgrade() {
            let _ = recruit(&step, py, 2);
        }
    }
}

/// The streaming driver's step: running task `i` is calling a Python `run(i)`.
struct CallbackStep {
    crew: Crew,
    run: Py<PyAny>,
}

impl CrewWork for CallbackStep {
    fn crew(&self) -> &Crew {
        &self.crew
    }

    fn run(&self, py: Python<'_>, index: usize) {
        if let Err(e) = self.run.call1(py, (index,)) {
            // `run` reports its own outcome; an error escaping it is a bug, printed (as an
            // unraisable exception) rather than left to end the worker's loop.
            e.write_unraisable(py, Some(self.run.bind(py)));
        }
    }
}

/// A step's crew for Python's driver: `Crew(count, limit, run, submit)`. The calling thread
/// claims tasks with `claim()`; the scout is given `scout_handle()`; workers call `run(i)`.
#[pyclass(frozen, name = "Crew", module = "ferrograph._core")]
pub struct PyCrew {
    /// The only strong reference outside a running worker: dropping the `Crew` ends the step
    /// for the scout's handle and for workers not started yet.
    step: Arc<CallbackStep>,
}

#[pymethods]
impl PyCrew {
    #[new]
    #[pyo3(signature = (count, limit, run, submit))]
    fn new(count: usize, limit: Option<i64>, run: Py<PyAny>, submit: Py<PyAny>) -> Self {
        // A limit below 1 leaves the caller alone, as the cap's arithmetic does for 0.
        let limit = limit.map(|l| usize::try_from(l).unwrap_or(0));
        PyCrew {
            step: Arc::new(CallbackStep {
                crew: Crew::new(count, limit, submit),
                run,
            }),
        }
    }

    /// How many workers the crew may recruit.
    #[getter]
    fn helpers(&self) -> usize {
        self.step.crew.helpers()
    }

    /// The next unclaimed task index, now claimed (None once all are).
    fn claim(&self) -> Option<usize> {
        self.step.crew.claim()
    }

    /// The weak handle for the scout's `watch`: calling it recruits two workers if tasks are
    /// still waiting, and does nothing once this crew is gone.
    fn scout_handle(&self) -> StepCrew {
        StepCrew::of(&self.step)
    }

    /// Clears the unclaimed tasks: nothing more starts. Returns how many never will (the
    /// rest were claimed: they run, or ran, to their end).
    fn close(&self) -> usize {
        self.step.crew.close()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // `run` and `submit` belong to this object only while no worker holds the step too;
        // while one does, they are reported as held from outside (the count then is more than
        // one), so the collector can never free them from under a running worker. The count
        // is steady here: the step is upgraded and released only by threads holding the GIL
        // (`StepCrew`'s methods), as the collector does.
        if Arc::strong_count(&self.step) == 1 {
            visit.call(&self.step.run)?;
            visit.call(&self.step.crew.submit)?;
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StepCrew>()?;
    m.add_class::<PyCrew>()?;
    Ok(())
}
