//! The steps of a checkpointed `invoke` on the Rust driver.
//!
//! A run with a checkpointer goes by `GraphRun` (it has a thread: tasks named as LangGraph
//! names them, writes saved as each task ends, a checkpoint after each step). Most of its
//! steps are one task of a node that simply runs, though, and for those the loop here does
//! what the Python step loop would, on the run's own [`Run`]: plan the step, prepare the task
//! (its input and config as the direct driver builds them, with the task's id and `Task`
//! object), call the node, turn its result into writes and apply them. What belongs to the
//! thread stays in Python, in three calls a step (see `pregel/_direct_thread.py`): naming the
//! step's tasks, saving the task's writes, saving the checkpoint.
//!
//! Any step that is not of that kind goes back to the Python loop at a step boundary, and the
//! Python loop comes back here for the steps after it: a step whose tasks the naming call
//! does not hand over (several tasks, the start node, saved writes or answers to reuse) is
//! returned planned; a task whose node failed or paused is returned run (its outcome recorded
//! on its `Task`), for the Python loop to end the step as it ends its own.
//!
//! The [`Run`] is borrowed only between calls to Python, never across one.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::direct::{describe_writes, Caller, DirectGraph, RunArgs};
use super::engine::{apply_error, planned_items, OutOfSteps, PyReducers, Run};
use super::task_config::RunConfig;
use crate::schedule::TaskWrites;

/// The run has no step left.
const RUN_OVER: u8 = 0;
/// The step just planned is the Python loop's to run (its tasks were named and kept by the
/// naming call).
const STEP_PLANNED: u8 = 1;
/// The step's task ran and failed or paused: the Python loop ends the step.
const STEP_RUN: u8 = 2;

/// The thread's side of each step, as Python callables (see the module doc).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ThreadCalls {
    /// `name_step(planned, step) -> Task | None`: makes and names the step's tasks (from
    /// `(node_id, push, arg)` as `Run.next_tasks` gives them) and returns the one task this
    /// loop may run, or None to hand the step to the Python loop.
    name_step: Py<PyAny>,
    /// `task_finished(task)`: saves the task's writes, which it holds (`(kind, target,
    /// value)` tuples, set here as the Python loop sets them).
    task_finished: Py<PyAny>,
    /// `task_failed(task, error)`: the task's node failed or paused; recorded on the task
    /// (and saved) as the Python loop records it.
    task_failed: Py<PyAny>,
    /// `step_applied(task)`: the step's writes are applied; saves its checkpoint.
    step_applied: Py<PyAny>,
}

/// Runs the steps of `run` (the `Run` of a checkpointed `GraphRun` of `graph`) that are one
/// plain task each, until the run is over (0), a step is the Python loop's to run (1, planned)
/// or to end (2, its task failed or paused). `config`, `configurable` and `metadata` are what
/// each task's config is copied from, as `GraphRun` builds it; `stop_check` and `control` as
/// for `DirectGraph.invoke`. Raises `OutOfSteps` past the recursion limit and
/// `ConcurrentUpdate` for two writes to a last-value key in one step.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (direct, run, graph, strict, config, configurable, metadata, stop_check, control, calls))]
fn run_thread_steps<'py>(
    direct: &Bound<'py, DirectGraph>,
    run: &Bound<'py, Run>,
    graph: Py<PyAny>,
    strict: bool,
    config: Bound<'py, PyDict>,
    configurable: Bound<'py, PyDict>,
    metadata: Option<Bound<'py, PyDict>>,
    stop_check: Option<Bound<'py, PyAny>>,
    control: Option<Bound<'py, PyAny>>,
    calls: ThreadCalls,
) -> PyResult<u8> {
    let py = direct.py();
    let direct = direct.get();
    let compiled = direct.plan.get();
    let plan = &compiled.plan;
    let args = RunArgs {
        input: py.None().into_bound(py),
        caller: Caller {
            graph,
            strict,
            paused: PyList::empty(py).unbind(),
        },
        config: RunConfig::new(config, configurable, metadata),
    };
    let plain_control = direct.hooks.plain_control(control.as_ref());
    loop {
        if let Some(check) = &stop_check {
            check.call0()?;
        }
        let (planned, task, step) = {
            let mut held = run.borrow_mut();
            let tasks = held
                .state
                .next_tasks(plan)
                .map_err(|_| OutOfSteps::new_err(()))?;
            if tasks.is_empty() {
                held.tasks = tasks;
                return Ok(RUN_OVER);
            }
            let planned = planned_items(py, &held.state, &tasks)?;
            let first = tasks[0];
            held.tasks = tasks;
            (planned, first, held.state.step())
        };
        let owner = calls.name_step.bind(py).call1((planned, step))?;
        if owner.is_none() {
            return Ok(STEP_PLANNED);
        }
        if let Some(control) = &control {
            direct.hooks.check_drain(control, plain_control)?;
        }
        let id = owner
            .getattr(intern!(py, "id"))?
            .cast_into::<PyString>()
            .map_err(PyErr::from)?;
        let id_text = id.to_str()?.to_owned();
        let prepared = {
            let held = run.borrow();
            direct.prepare_as(
                py,
                &args,
                &held.state,
                task,
                step,
                id,
                &id_text,
                Some(&owner),
            )?
        };
        // As the Python loop's task has them (calls made from the node find its config).
        owner.setattr(intern!(py, "input"), &prepared.input)?;
        owner.setattr(intern!(py, "config"), &prepared.config)?;
        let writes = match direct.run_node(py, &prepared, &args.caller, false) {
            Ok(finished) => finished.writes,
            Err(e) => {
                calls.task_failed.bind(py).call1((&owner, e.value(py)))?;
                return Ok(STEP_RUN);
            }
        };
        owner.setattr(intern!(py, "writes"), describe_writes(py, &writes)?)?;
        if let Err(e) = calls.task_finished.bind(py).call1((&owner,)) {
            // Saving its writes failed: that is the task's failure, as in the Python loop.
            calls.task_failed.bind(py).call1((&owner, e.value(py)))?;
            return Ok(STEP_RUN);
        }
        {
            let mut held = run.borrow_mut();
            let held = &mut *held;
            let mut reducers = PyReducers {
                py,
                reducers: &held.reducers,
            };
            held.state
                .apply(plan, vec![TaskWrites { task, writes }], &mut reducers)
                .map_err(|e| apply_error(py, compiled, e))?;
        }
        calls.step_applied.bind(py).call1((&owner,))?;
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_thread_steps, m)?)?;
    Ok(())
}
