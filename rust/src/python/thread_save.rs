//! The thread's side of a common checkpointed step, done here rather than in Python.
//!
//! Most steps of a checkpointed `invoke` on the Rust driver ([`super::direct_thread`]) are
//! one pull task of a plain node, on a thread with nothing pending. For such a step this
//! module does what `ThreadSteps.name_step`, `Persistence.task_ended` and
//! `Persistence.save(run, "loop")` do in Python (see `pregel/_direct_thread.py` and
//! `pregel/_checkpoint.py`): names the task as LangGraph names it, saves its writes as it
//! ends and saves the checkpoint after the step, reading and setting the same `Persistence`
//! attributes, so that the Python calls and this module may take turns from step to step.
//!
//! Each of the three checks first whether the Python call would do anything this one does
//! not (a pending write or answer, a `Send`, an interrupt's row of `versions_seen`, an
//! answer the node took, ...) and, if so, changes nothing and answers no: the caller then
//! makes the Python call. What makes a whole run unfit (a saver whose `put` keeps what it
//! is given, or that names versions itself; untracked keys; an async run's outbox) is
//! decided in Python before the run's steps start (`_direct_thread.thread_save`).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::checkpoint_ids::{
    checkpoint_id_bytes, checkpoint_stamp, next_version_text, task_id_text,
};
use super::engine::Run;
use crate::schedule::Write;

/// LangGraph's checkpoint format version (`Checkpoint["v"]`).
const CHECKPOINT_FORMAT: i64 = 4;

/// The pieces of one run's saving that stay the same from step to step, made by
/// `_direct_thread.thread_save`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(super) struct ThreadSave {
    /// The run's `Persistence`.
    saving: Py<PyAny>,
    /// `Task` and `Scratchpad`, the classes of a task and of its answers.
    task_type: Py<PyAny>,
    scratchpad_type: Py<PyAny>,
    /// By node id: a plain node's pull task parts (None: a node whose tasks are Python's).
    nodes: Vec<Option<PullNode>>,
    /// By key id, the state key's channel name; by node id, its `branch:to:` channel's.
    key_names: Vec<Py<PyString>>,
    branch_names: Vec<Py<PyString>>,
    /// `langgraph.checkpoint.base.id`, whose `_last_v6_timestamp` checkpoint ids follow.
    uuid_state: Py<PyAny>,
    /// The saver's `put` and `put_writes` (None under `durability="exit"`: writes and
    /// checkpoints are kept for the run's end).
    put: Option<Py<PyAny>>,
    put_writes: Option<Py<PyAny>>,
    /// The run config's `metadata`, added to the config `put` gets (None: empty).
    run_metadata: Option<Py<PyDict>>,
}

/// What a plain node's pull task is made of: `Task`'s name, path, triggers and runner; the
/// bytes its id hashes before the step and after it; the node's static edges as saved.
#[derive(FromPyObject)]
struct PullNode(
    Py<PyString>,
    Py<PyAny>,
    Py<PyAny>,
    Py<PyAny>,
    Py<PyBytes>,
    Py<PyBytes>,
    Vec<Py<PyTuple>>,
);

impl ThreadSave {
    /// The step's one task, node `node`'s pull task at `step`, made and named as
    /// `ThreadSteps.name_step` makes it; None when that is the Python call's to do.
    pub(super) fn name<'py>(
        &self,
        py: Python<'py>,
        node: usize,
        step: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(PullNode(name, path, triggers, runner, before, after, _)) =
            self.nodes.get(node).and_then(Option::as_ref)
        else {
            return Ok(None);
        };
        let saving = self.saving.bind(py);
        if saving.getattr(intern!(py, "pending"))?.is_truthy()?
            || saving.getattr(intern!(py, "resume_map"))?.is_truthy()?
        {
            return Ok(None);
        }
        let checkpoint_id = saving
            .getattr(intern!(py, "checkpoint"))?
            .get_item(intern!(py, "id"))?;
        let Some(head) = checkpoint_id_bytes(checkpoint_id.cast::<PyString>()?.to_str()?) else {
            return Ok(None);
        };
        let (before, after) = (before.as_bytes(py), after.as_bytes(py));
        let step_text = step.to_string();
        let mut key = Vec::with_capacity(16 + before.len() + step_text.len() + after.len());
        key.extend_from_slice(&head);
        key.extend_from_slice(before);
        key.extend_from_slice(step_text.as_bytes());
        key.extend_from_slice(after);
        let none = py.None();
        let task = self.task_type.bind(py).call1((
            0,
            node,
            name,
            task_id_text(&key),
            path,
            triggers,
            &none,
            &none,
            runner,
            step,
        ))?;
        let answers = self
            .scratchpad_type
            .bind(py)
            .call1((PyList::empty(py), saving))?;
        task.setattr(intern!(py, "scratchpad"), answers)?;
        Ok(Some(task))
    }

    /// Saves the writes of `owner` (a task named by [`Self::name`], of node `node`), which
    /// ended well, as `Persistence.task_ended` does; false (nothing saved) when that is the
    /// Python call's to do.
    pub(super) fn task_ended(
        &self,
        py: Python<'_>,
        owner: &Bound<'_, PyAny>,
        node: usize,
        writes: &[Write<Py<PyAny>>],
    ) -> PyResult<bool> {
        let Some(PullNode(.., static_writes)) = self.nodes.get(node).and_then(Option::as_ref)
        else {
            return Ok(false);
        };
        let saving = self.saving.bind(py);
        let pending = saving.getattr(intern!(py, "pending"))?;
        if pending.is_truthy()?
            || !owner
                .getattr(intern!(py, "scratchpad"))?
                .getattr(intern!(py, "resume_written"))?
                .is_none()
        {
            return Ok(false);
        }
        let saved = PyList::empty(py);
        for write in writes {
            match write {
                Write::Key(key, value) => saved.append((&self.key_names[*key], value))?,
                Write::Goto(target) => saved.append((&self.branch_names[*target], py.None()))?,
                Write::Send(..) | Write::Handled => return Ok(false),
            }
        }
        for write in static_writes {
            saved.append(write)?;
        }
        if saved.is_empty() {
            saved.append((intern!(py, "__no_writes__"), py.None()))?;
        }
        let id = owner.getattr(intern!(py, "id"))?;
        let pending = pending.cast_into::<PyList>().map_err(PyErr::from)?;
        for write in saved.iter() {
            let (channel, value) = write.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
            pending.append((&id, channel, value))?;
        }
        match &self.put_writes {
            Some(put_writes) => {
                if let Err(e) = put_writes
                    .bind(py)
                    .call1((self.at_checkpoint(saving)?, &saved, id))
                {
                    // (raises: the task's failure)
                    saving.call_method1(
                        intern!(py, "writes_not_saved"),
                        (owner, saved, e.value(py)),
                    )?;
                }
            }
            None => {
                saving
                    .getattr(intern!(py, "exit_writes"))?
                    .cast_into::<PyList>()
                    .map_err(PyErr::from)?
                    .append((id, saved, intern!(py, "")))?;
            }
        }
        Ok(true)
    }

    /// `Persistence._at_checkpoint()`: the config writes against the newest checkpoint are
    /// saved with, as `_put` left it (the Python call otherwise).
    fn at_checkpoint<'py>(&self, saving: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = saving.py();
        let at = saving.getattr(intern!(py, "_at"))?;
        if let Ok(at) = at.cast::<PyTuple>() {
            if at.len() == 3
                && at.get_item(0)?.is(&saving.getattr(intern!(py, "config"))?)
                && at
                    .get_item(1)?
                    .is(&saving.getattr(intern!(py, "checkpoint"))?)
            {
                return at.get_item(2);
            }
        }
        saving.call_method0(intern!(py, "_at_checkpoint"))
    }

    /// Saves the checkpoint after a step of `run` as `Persistence.save(run, "loop")` does (and
    /// `ThreadSteps.step_applied` after it); false (nothing changed) when that is the Python
    /// call's to do.
    pub(super) fn save(&self, py: Python<'_>, run: &Bound<'_, Run>) -> PyResult<bool> {
        let saving = self.saving.bind(py);
        if !run.borrow().state.sends().is_empty() {
            return Ok(false);
        }
        let previous = saving
            .getattr(intern!(py, "checkpoint"))?
            .cast_into::<PyDict>()
            .map_err(PyErr::from)?;
        let (Some(values), Some(versions), Some(seen)) = (
            previous.get_item(intern!(py, "channel_values"))?,
            previous.get_item(intern!(py, "channel_versions"))?,
            previous.get_item(intern!(py, "versions_seen"))?,
        ) else {
            return Ok(false);
        };
        let (Ok(values), Ok(versions), Ok(seen)) = (
            values.cast_into::<PyDict>(),
            versions.cast_into::<PyDict>(),
            seen.cast_into::<PyDict>(),
        ) else {
            return Ok(false);
        };
        // The Python call starts the kept dicts anew, or has rows and channels to add.
        if !saving.getattr(intern!(py, "_live_run"))?.is(run)
            || !saving.getattr(intern!(py, "_live_versions"))?.is(&versions)
            || versions.contains(intern!(py, "__pregel_tasks"))?
            || seen.contains(intern!(py, "__interrupt__"))?
            || !seen.contains(intern!(py, "__input__"))?
            || saving.getattr(intern!(py, "interrupt_seen"))?.is_truthy()?
            || saving.getattr(intern!(py, "call_names"))?.is_truthy()?
        {
            return Ok(false);
        }
        let config = saving.getattr(intern!(py, "config"))?;
        let configurable = config
            .get_item(intern!(py, "configurable"))?
            .cast_into::<PyDict>()
            .map_err(PyErr::from)?;
        if self.put.is_some() {
            // (`_put` makes a config for a parent other than the one the config names)
            let saved_id = saving.getattr(intern!(py, "saved_id"))?;
            let named = configurable.get_item(intern!(py, "checkpoint_id"))?;
            if saved_id.is_none() || !named.is_some_and(|id| id.eq(&saved_id).unwrap_or(false)) {
                return Ok(false);
            }
        }

        let names = saving
            .getattr(intern!(py, "versions"))?
            .getattr(intern!(py, "names"))?
            .cast_into::<PyList>()
            .map_err(PyErr::from)?;
        let (step, latest) = {
            let held = run.borrow();
            (held.state.step() - 1, held.state.latest_version() as usize)
        };
        while names.len() <= latest {
            let last = names.get_item(names.len() - 1)?;
            names.append(next_version_text((!last.is_none()).then_some(&last))?)?;
        }
        let changed_updated = run.borrow_mut().checkpoint_into(
            py,
            names,
            py.None(),
            values.clone(),
            versions.clone(),
            seen.clone(),
            None,
        )?;
        let changed = changed_updated.get_item(0)?;
        let updated = changed_updated.get_item(1)?;
        if values.contains(intern!(py, "__pregel_tasks"))? {
            values.del_item(intern!(py, "__pregel_tasks"))?;
        }

        let uuid_state = self.uuid_state.bind(py);
        let last = uuid_state
            .getattr(intern!(py, "_last_v6_timestamp"))?
            .extract::<Option<u64>>()?;
        let (id, ts, stamp) = checkpoint_stamp(step, last);
        uuid_state.setattr(intern!(py, "_last_v6_timestamp"), stamp)?;
        let id = PyString::new(py, &id);
        let checkpoint = PyDict::new(py);
        checkpoint.set_item(intern!(py, "v"), CHECKPOINT_FORMAT)?;
        checkpoint.set_item(intern!(py, "id"), &id)?;
        checkpoint.set_item(intern!(py, "ts"), ts)?;
        checkpoint.set_item(intern!(py, "channel_values"), values)?;
        checkpoint.set_item(intern!(py, "channel_versions"), versions)?;
        checkpoint.set_item(intern!(py, "versions_seen"), seen)?;
        checkpoint.set_item(intern!(py, "updated_channels"), updated)?;
        saving.setattr(intern!(py, "checkpoint"), &checkpoint)?;
        let parents = match saving
            .getattr(intern!(py, "metadata"))?
            .cast_into::<PyDict>()
            .ok()
            .and_then(|m| m.get_item(intern!(py, "parents")).ok().flatten())
        {
            Some(parents) if parents.is_truthy()? => parents,
            _ => PyDict::new(py).into_any(),
        };
        let metadata = PyDict::new(py);
        metadata.set_item(intern!(py, "source"), intern!(py, "loop"))?;
        metadata.set_item(intern!(py, "step"), step)?;
        metadata.set_item(intern!(py, "parents"), parents)?;
        saving.setattr(intern!(py, "metadata"), &metadata)?;
        for kept in [intern!(py, "pending"), intern!(py, "exit_writes")] {
            if saving.getattr(kept)?.is_truthy()? {
                saving.setattr(kept, PyList::empty(py))?;
            }
        }

        if let Some(put) = &self.put {
            // `_put`, the config naming the saved parent already (checked above).
            saving.setattr(intern!(py, "parent_config"), &config)?;
            let put_config = match &self.run_metadata {
                Some(run_metadata) => {
                    let merged = config.cast::<PyDict>()?.copy()?;
                    merged.set_item(intern!(py, "metadata"), run_metadata)?;
                    merged.into_any()
                }
                None => config.clone(),
            };
            let saved = put
                .bind(py)
                .call1((put_config, &checkpoint, &metadata, changed))?;
            saving.setattr(intern!(py, "put_config"), &saved)?;
            saving.setattr(intern!(py, "saved_id"), &id)?;
            let new_configurable = configurable.copy()?;
            new_configurable.update(
                saved
                    .get_item(intern!(py, "configurable"))?
                    .cast::<PyDict>()?
                    .as_mapping(),
            )?;
            let new_config = config.cast::<PyDict>()?.copy()?;
            new_config.set_item(intern!(py, "configurable"), &new_configurable)?;
            saving.setattr(intern!(py, "config"), &new_config)?;
            let at_newest = new_configurable
                .get_item(intern!(py, "checkpoint_id"))?
                .is_some_and(|named| named.eq(&id).unwrap_or(false))
                && new_configurable
                    .get_item(intern!(py, "checkpoint_ns"))?
                    .is_some_and(|ns| ns.eq(intern!(py, "")).unwrap_or(false));
            if at_newest {
                saving.setattr(
                    intern!(py, "_at"),
                    PyTuple::new(
                        py,
                        [
                            new_config.as_any(),
                            checkpoint.as_any(),
                            new_config.as_any(),
                        ],
                    )?,
                )?;
            }
        }
        saving.setattr(intern!(py, "resumed"), false)?;
        Ok(true)
    }
}
