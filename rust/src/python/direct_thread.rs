//! The steps of a checkpointed `invoke` on the Rust driver.
//!
//! A run with a checkpointer goes by `GraphRun` (it has a thread: tasks named as LangGraph
//! names them, writes saved as each task ends, a checkpoint after each step). Most of its
//! steps are tasks of nodes that simply run, though, and for those the loop here does what
//! the Python step loop would, on the run's own [`Run`]: plan the step, prepare each task
//! (its input and config as the direct driver builds them, with the task's id and `Task`
//! object), call the nodes (several on the calling thread and the workers it recruits, as
//! the direct driver shares a step: [`run_shared`]), turn their results into writes and apply
//! them. What belongs to the thread is done by calls into Python (see
//! `pregel/_direct_thread.py`): naming the step's tasks, saving each task's writes or failure
//! as it ends (on the thread that ran it), saving the checkpoint — except for the most common
//! step, one pull task of a plain node with nothing pending, whose naming and saving
//! [`ThreadSave`] does here when it can.
//!
//! Any step that is not of that kind goes back to the Python loop at a step boundary, and the
//! Python loop comes back here for the steps after it: a step whose tasks the naming call
//! does not hand over (the start node, saved writes or answers to reuse, a node with an
//! error handler) is returned planned; a step in which a task paused (or refused its answer
//! to an interrupt) is returned run, for the Python loop to end as it ends its own. A task
//! that fails fails the step here as there: the tasks already running end, none starts, and
//! its error is raised.
//!
//! The [`Run`] is borrowed only between calls to Python, never across one.

use std::sync::atomic::AtomicBool;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::direct::{run_shared, Caller, DirectGraph, RunArgs, ThreadTasks};
use super::engine::{apply_error, planned_items, OutOfSteps, PyReducers, Run};
use super::task_config::RunConfig;
use super::thread_save::ThreadSave;
use crate::schedule::{TaskPath, TaskWrites};

/// The run has no step left.
const RUN_OVER: u8 = 0;
/// The step just planned is the Python loop's to run (its tasks were named and kept by the
/// naming call).
const STEP_PLANNED: u8 = 1;
/// The step's tasks ran and one paused (or refused its answer): the Python loop ends the step.
const STEP_RUN: u8 = 2;

/// The thread's side of each step, as Python callables (see the module doc).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ThreadCalls {
    /// `name_step(planned, step) -> list[Task] | None`: makes and names the step's tasks
    /// (from `(node_id, push, arg)` as `Run.next_tasks` gives them) and returns them for this
    /// loop to run, or None to hand the step to the Python loop.
    name_step: Py<PyAny>,
    /// `task_finished(task)`: saves the task's writes, which it holds (`(kind, target,
    /// value)` tuples, set here as the Python loop sets them).
    task_finished: Py<PyAny>,
    /// `task_failed(task, error) -> error | None`: the task's node failed or paused;
    /// recorded on the task (and saved) as the Python loop records it; the error that fails
    /// the step, or None (a pause, a refused answer).
    task_failed: Py<PyAny>,
    /// `step_applied(tasks)`: the step's writes are applied; saves its checkpoint.
    step_applied: Py<PyAny>,
    /// The run's `ThreadSteps`, whose `planned` are the tasks of the step named last (set
    /// here for a step named in Rust that the Python loop ends).
    steps: Py<PyAny>,
    /// The run's saving in Rust, for steps it can take (None: the calls above do all).
    fast: Option<ThreadSave>,
}

/// Runs the steps of `run` (the `Run` of a checkpointed `GraphRun` of `graph`) whose tasks
/// the naming call hands over, until the run is over (0), a step is the Python loop's to run
/// (1, planned) or to end (2, a task paused). `config`, `configurable` and `metadata` are what
/// each task's config is copied from, as `GraphRun` builds it; `max_concurrency`,
/// `stop_check` and `control` as for `DirectGraph.invoke`. Raises a failed task's error (once
/// the tasks already running have ended), `OutOfSteps` past the recursion limit and
/// `ConcurrentUpdate` for two writes to a last-value key in one step.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (direct, run, graph, strict, config, configurable, metadata, max_concurrency, stop_check, control, calls))]
fn run_thread_steps<'py>(
    direct: &Bound<'py, DirectGraph>,
    run: &Bound<'py, Run>,
    graph: Py<PyAny>,
    strict: bool,
    config: Bound<'py, PyDict>,
    configurable: Bound<'py, PyDict>,
    metadata: Option<Bound<'py, PyDict>>,
    max_concurrency: Option<usize>,
    stop_check: Option<Bound<'py, PyAny>>,
    control: Option<Bound<'py, PyAny>>,
    calls: ThreadCalls,
) -> PyResult<u8> {
    let py = direct.py();
    let driver = direct.get();
    let compiled = driver.plan.get();
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
    let plain_control = driver.hooks.plain_control(control.as_ref());
    loop {
        if let Some(check) = &stop_check {
            check.call0()?;
        }
        let (tasks, step) = {
            let mut held = run.borrow_mut();
            let tasks = held
                .state
                .next_tasks(plan)
                .map_err(|_| OutOfSteps::new_err(()))?;
            if tasks.is_empty() {
                held.tasks = tasks;
                return Ok(RUN_OVER);
            }
            held.tasks = tasks.clone();
            (tasks, held.state.step())
        };
        // A step of one pull task of a plain node is named in Rust (see `thread_save`).
        let fast_task = match (&calls.fast, tasks.as_slice()) {
            (Some(fast), [task]) if matches!(task.path, TaskPath::Pull(_)) => {
                fast.name(py, task.node, step)?
            }
            _ => None,
        };
        let named_in_rust = fast_task.is_some();
        let named = match fast_task {
            Some(task) => PyList::new(py, [task])?.into_any(),
            None => {
                let planned = planned_items(py, &run.borrow().state, &tasks)?;
                calls.name_step.bind(py).call1((planned, step))?
            }
        };
        if named.is_none() {
            return Ok(STEP_PLANNED);
        }
        if let Some(control) = &control {
            driver.hooks.check_drain(control, plain_control)?;
        }
        let owners = named.cast_into::<PyList>().map_err(PyErr::from)?;
        let mut prepared = Vec::with_capacity(tasks.len());
        for (&task, owner) in tasks.iter().zip(owners.iter()) {
            let id = owner
                .getattr(intern!(py, "id"))?
                .cast_into::<PyString>()
                .map_err(PyErr::from)?;
            let ready = {
                let held = run.borrow();
                driver.prepare_as(py, &args, &held.state, task, step, id, Some(&owner))?
            };
            // As the Python loop's task has them (calls made from the node find its config).
            owner.setattr(intern!(py, "input"), &ready.input)?;
            owner.setattr(intern!(py, "config"), &ready.config)?;
            prepared.push(ready);
        }
        let results = if prepared.len() == 1 {
            let ready = prepared.pop().expect("one task");
            let owner = owners.get_item(0)?;
            match ThreadTasks::run(
                py,
                driver,
                &ready,
                &args.caller,
                &owner,
                calls.task_finished.bind(py),
                calls.task_failed.bind(py),
                calls.fast.as_ref().map(|fast| (fast, ready.task.node)),
            )? {
                Some(finished) => vec![TaskWrites {
                    task: ready.task,
                    writes: finished.writes,
                }],
                None => {
                    if named_in_rust {
                        // (the Python loop ends the step with the tasks it planned)
                        calls
                            .steps
                            .bind(py)
                            .setattr(intern!(py, "planned"), owners)?;
                    }
                    return Ok(STEP_RUN);
                }
            }
        } else {
            let thread = ThreadTasks {
                owners: owners.iter().map(Bound::unbind).collect(),
                finished: calls.task_finished.clone_ref(py),
                failed: calls.task_failed.clone_ref(py),
                handed: AtomicBool::new(false),
            };
            match run_shared(direct, prepared, &args, max_concurrency, Some(thread))? {
                Some(results) => results,
                None => return Ok(STEP_RUN),
            }
        };
        {
            let mut held = run.borrow_mut();
            let held = &mut *held;
            let mut reducers = PyReducers {
                py,
                reducers: &held.reducers,
            };
            held.state
                .apply(plan, results, &mut reducers)
                .map_err(|e| apply_error(py, compiled, e))?;
        }
        let saved = match &calls.fast {
            Some(fast) if owners.len() == 1 => {
                let owner = owners.get_item(0)?;
                // (frees the task now: its config refers back to it)
                owner.setattr(intern!(py, "config"), PyDict::new(py))?;
                fast.save(py, run)?
            }
            _ => false,
        };
        if !saved {
            calls.step_applied.bind(py).call1((owners,))?;
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_thread_steps, m)?)?;
    Ok(())
}
