//! A direct run held between calls from Python: what the drivers that hand each step back to
//! Python (`stream` in [`super::direct_stream`], `ainvoke` in [`super::direct_async`]) keep
//! of their run, and the step they plan next.
//!
//! The sync `invoke` driver runs its whole loop in one call and keeps these on its stack;
//! these two return to Python after each step, so the run's arguments and its Rust state live
//! here between calls.

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::direct::{Caller, DirectGraph, Prepared, RunArgs};
use super::engine::OutOfSteps;
use super::task_config::{prime_configurable, RunConfig};
use crate::schedule::RunState;

pub(super) struct HeldRun {
    pub(super) caller: Caller,
    input: Py<PyAny>,
    config: Py<PyDict>,
    configurable: Py<PyDict>,
    /// Run metadata (None: none, or empty).
    metadata: Option<Py<PyDict>>,
    control: Option<Py<PyAny>>,
    /// Whether `control` is a `RunControl` itself (see `Hooks::check_drain`).
    plain_control: bool,
    pub(super) state: Mutex<RunState<Py<PyAny>>>,
}

impl HeldRun {
    /// The run of `direct` from `initial` (one value a key, or an error naming the mismatch).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        py: Python<'_>,
        direct: &DirectGraph,
        caller: Caller,
        input: Py<PyAny>,
        initial: Vec<Option<Py<PyAny>>>,
        recursion_limit: i64,
        config: Py<PyDict>,
        configurable: Py<PyDict>,
        metadata: Option<Py<PyDict>>,
        control: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let plan = &direct.plan.get().plan;
        if initial.len() != plan.keys {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "expected {} initial values",
                plan.keys
            )));
        }
        prime_configurable(configurable.bind(py))?;
        let plain_control = direct
            .hooks
            .plain_control(control.as_ref().map(|c| c.bind(py)));
        Ok(HeldRun {
            caller,
            input,
            config,
            configurable,
            metadata: metadata.filter(|m| !m.bind(py).is_empty()),
            control,
            plain_control,
            state: Mutex::new(RunState::new(plan, initial, recursion_limit)),
        })
    }

    /// Plans the next step and prepares its tasks; None when no task is left (the run is
    /// over). Raises `OutOfSteps` past the recursion limit and `GraphDrained` when the run's
    /// control was asked to drain.
    pub(super) fn next_prepared(
        &self,
        py: Python<'_>,
        direct: &DirectGraph,
    ) -> PyResult<Option<Vec<Prepared>>> {
        let plan = &direct.plan.get().plan;
        let tasks = self
            .state
            .lock()
            .next_tasks(plan)
            .map_err(|_| OutOfSteps::new_err(()))?;
        if tasks.is_empty() {
            return Ok(None);
        }
        if let Some(control) = &self.control {
            direct
                .hooks
                .check_drain(control.bind(py), self.plain_control)?;
        }
        let run = RunArgs {
            input: self.input.bind(py).clone(),
            caller: self.caller.clone_ref(py),
            config: RunConfig {
                config: self.config.bind(py).clone(),
                configurable: self.configurable.bind(py).clone(),
                metadata: self.metadata.as_ref().map(|m| m.bind(py).clone()),
            },
        };
        let state = self.state.lock();
        let step = state.step();
        tasks
            .iter()
            .map(|&task| direct.prepare(py, &run, &state, task, step))
            .collect::<PyResult<Vec<_>>>()
            .map(Some)
    }
}
