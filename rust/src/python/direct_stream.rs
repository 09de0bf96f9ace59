//! The direct driver, streaming: `stream()` of `updates` and `values` without a `GraphRun`.
//!
//! A run the direct driver could `invoke` (see [`super::direct`]) that streams only state
//! (`updates`, `values`) is driven step by step from the caller's `for` loop: each call of
//! [`DirectStream::next_items`] runs supersteps on the calling thread until it has items
//! (`(namespace, mode, item)` triples, as `GraphRun` makes them) and returns them; nothing is
//! produced off the caller's thread but task outcomes, so there is no channel. A step of one
//! task runs right here; a step of several runs on workers (as the streaming loop runs a step
//! whose task ends are reported) and each task's items are returned as it ends, in the order
//! the tasks end. The items are those `GraphRun` streams: each task's `updates` payload, the
//! state after each step that wrote it, and a pause at `interrupt()`'s.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::crew::{recruit, CrewWork};
use super::direct::{
    wait_for_running, Caller, DirectGraph, Prepared, SharedStep, Writes, SIGNAL_CHECK_INTERVAL,
};
use super::engine::{apply_error, read_state, PyReducers};
use super::held_run::HeldRun;
use crate::plan::START_NODE;
use crate::schedule::TaskWrites;

/// A step of several tasks, running on workers while the caller hands their items on.
struct LiveStep {
    step: Arc<SharedStep>,
    /// The writes of the tasks that ended so far.
    results: Vec<TaskWrites<Py<PyAny>>>,
    paused: bool,
}

/// One streaming run on the direct driver (see the module doc); made by
/// `pregel._direct.stream_direct`, which turns its errors into LangGraph's.
#[pyclass(module = "ferrograph._core")]
pub struct DirectStream {
    graph: Py<DirectGraph>,
    run: HeldRun,
    /// The state keys `values` items carry.
    output_ids: Vec<usize>,
    updates: bool,
    values: bool,
    max_concurrency: Option<usize>,
    live: Option<LiveStep>,
    /// A failure that came after items of its step: raised once those are handed on.
    failure: Option<PyErr>,
    over: bool,
}

#[pymethods]
impl DirectStream {
    /// As `DirectGraph.invoke`'s arguments (`paused` collects the questions of a pause), with
    /// `output_ids` the keys of `values` items and `updates` / `values` the modes streamed.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (direct, graph, input, strict, initial, recursion_limit, config, configurable, metadata, output_ids, updates, values, max_concurrency, control, paused))]
    fn new(
        py: Python<'_>,
        direct: Py<DirectGraph>,
        graph: Py<PyAny>,
        input: Py<PyAny>,
        strict: bool,
        initial: Vec<Option<Py<PyAny>>>,
        recursion_limit: i64,
        config: Py<PyDict>,
        configurable: Py<PyDict>,
        metadata: Option<Py<PyDict>>,
        output_ids: Vec<usize>,
        updates: bool,
        values: bool,
        max_concurrency: Option<usize>,
        control: Option<Py<PyAny>>,
        paused: Py<PyList>,
    ) -> PyResult<Self> {
        let plan = &direct.get().plan.get().plan;
        if output_ids.iter().any(|&k| k >= plan.keys) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "output keys do not match the graph",
            ));
        }
        let caller = Caller {
            graph,
            strict,
            paused,
        };
        let run = HeldRun::new(
            py,
            direct.get(),
            caller,
            input,
            initial,
            recursion_limit,
            config,
            configurable,
            metadata,
            control,
        )?;
        Ok(DirectStream {
            graph: direct,
            run,
            output_ids,
            updates,
            values,
            max_concurrency,
            live: None,
            failure: None,
            over: false,
        })
    }

    /// The items of the run's next steps, as a list (never empty); None once the run is over.
    /// A task's failure is raised after the items before it.
    fn next_items<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        loop {
            let items = PyList::empty(py);
            match self.advance(py, &items) {
                Ok(true) if items.is_empty() => continue,
                Ok(true) => return Ok(Some(items)),
                Ok(false) => return Ok(None),
                Err(error) => {
                    self.end();
                    if items.is_empty() {
                        return Err(error);
                    }
                    self.failure = Some(error);
                    return Ok(Some(items));
                }
            }
        }
    }

    /// Stops the run: no task starts any more (those running on workers end on their own).
    fn close(&mut self) {
        self.end();
        self.failure = None;
    }
}

impl DirectStream {
    fn end(&mut self) {
        self.over = true;
        if let Some(live) = self.live.take() {
            live.step.crew.close();
        }
    }

    /// Runs the next step (or, in a step on workers, waits for its next task to end),
    /// adding its items to `items`; false once the run is over.
    fn advance(&mut self, py: Python<'_>, items: &Bound<'_, PyList>) -> PyResult<bool> {
        if self.over {
            return Ok(false);
        }
        if self.live.is_some() {
            self.advance_live(py, items)?;
            return Ok(true);
        }
        let graph = self.graph.bind(py).clone();
        let direct = graph.get();
        let Some(prepared) = self.run.next_prepared(py, direct)? else {
            self.over = true;
            return Ok(false);
        };
        if prepared.len() == 1 {
            let task = prepared.into_iter().next().expect("one task");
            let paused = PyList::empty(py);
            let caller = Caller {
                graph: self.run.caller.graph.clone_ref(py),
                strict: self.run.caller.strict,
                paused: paused.clone().unbind(),
            };
            let finished = direct.run_task(py, &task, &caller, self.updates)?;
            let stops = self.task_items(py, items, &task, finished.update, &paused)?;
            self.apply(py, vec![task_writes(&task, finished.writes)], items, stops)?;
            return Ok(true);
        }
        let step = Arc::new(SharedStep::new(
            &graph,
            prepared,
            &self.run.caller,
            self.max_concurrency,
            Some(self.updates),
            None,
        ));
        let work: Arc<dyn CrewWork> = step.clone();
        self.live = Some(LiveStep {
            step,
            results: Vec::new(),
            paused: false,
        });
        let helpers = work.crew().helpers();
        recruit(&work, py, helpers)?;
        self.advance_live(py, items)?;
        Ok(true)
    }

    /// Waits for the next task of the step on workers to end and adds its items; the last
    /// one's ending applies the step. A task's failure stops the step: the tasks already
    /// running end first (as in the streaming loop), then it is raised.
    fn advance_live(&mut self, py: Python<'_>, items: &Bound<'_, PyList>) -> PyResult<()> {
        let step = self.live.as_ref().expect("a step on workers").step.clone();
        let index = loop {
            if let Some(index) = step.progress.lock().ended.pop_front() {
                break index;
            }
            let ended = py.detach(|| {
                let mut progress = step.progress.lock();
                if progress.ended.is_empty() {
                    step.changed.wait_for(&mut progress, SIGNAL_CHECK_INTERVAL);
                }
                progress.ended.pop_front()
            });
            if let Some(index) = ended {
                break index;
            }
            py.check_signals()?;
        };
        let outcome = step.outcomes[index]
            .lock()
            .take()
            .expect("an ended task has its outcome");
        let finished = match outcome {
            Ok(finished) => finished,
            Err(error) => {
                self.live = None;
                self.over = true;
                let never_started = step.crew.close();
                wait_for_running(py, &step, never_started)?;
                return Err(error);
            }
        };
        let task = &step.tasks[index];
        let stops = self.task_items(
            py,
            items,
            task,
            finished.update,
            step.pauses[index].bind(py),
        )?;
        let live = self.live.as_mut().expect("a step on workers");
        live.results.push(task_writes(task, finished.writes));
        live.paused |= stops;
        if live.results.len() == step.tasks.len() {
            let live = self.live.take().expect("a step on workers");
            self.apply(py, live.results, items, live.paused)?;
        }
        Ok(())
    }

    /// The items of a task's end: its `updates` payload, or a pause's items (which `paused`
    /// holds the questions of: true then, the run stops after the step).
    fn task_items(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyList>,
        task: &Prepared,
        update: Option<Py<PyAny>>,
        paused: &Bound<'_, PyList>,
    ) -> PyResult<bool> {
        if task.task.node == START_NODE {
            return Ok(false);
        }
        let namespace = PyTuple::empty(py);
        if !paused.is_empty() {
            self.run
                .caller
                .paused
                .bind(py)
                .call_method1(intern!(py, "extend"), (paused,))?;
            let interrupts = PyTuple::new(py, paused.iter())?;
            if self.updates {
                let item = PyDict::new(py);
                item.set_item(intern!(py, "__interrupt__"), &interrupts)?;
                items.append((&namespace, intern!(py, "updates"), item))?;
            }
            if self.values {
                let item = read_state(
                    py,
                    self.graph.get().plan.get(),
                    &self.run.state.lock(),
                    &self.output_ids,
                )?;
                item.set_item(intern!(py, "__interrupt__"), &interrupts)?;
                items.append((&namespace, intern!(py, "values"), item))?;
            }
            return Ok(true);
        }
        if let Some(update) = update {
            let item = PyDict::new(py);
            item.set_item(self.graph.get().nodes[task.task.node].name.bind(py), update)?;
            items.append((namespace, intern!(py, "updates"), item))?;
        }
        Ok(false)
    }

    /// Applies a step's writes; the `values` item follows when it wrote a key items carry.
    fn apply(
        &mut self,
        py: Python<'_>,
        results: Vec<TaskWrites<Py<PyAny>>>,
        items: &Bound<'_, PyList>,
        paused: bool,
    ) -> PyResult<()> {
        let direct = self.graph.get();
        let compiled = direct.plan.get();
        let mut reducers = PyReducers {
            py,
            reducers: &direct.reducers,
        };
        let mut state = self.run.state.lock();
        let written = state
            .apply(&compiled.plan, results, &mut reducers)
            .map_err(|e| apply_error(py, compiled, e))?
            .written_keys;
        if paused {
            self.over = true; // a node paused at `interrupt()`: the run stops after its step
        }
        if self.values && written.iter().any(|k| self.output_ids.contains(k)) {
            let item = read_state(py, compiled, &state, &self.output_ids)?;
            items.append((PyTuple::empty(py), intern!(py, "values"), item))?;
        }
        Ok(())
    }
}

fn task_writes(task: &Prepared, writes: Writes) -> TaskWrites<Py<PyAny>> {
    TaskWrites {
        task: task.task,
        writes,
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DirectStream>()?;
    Ok(())
}
