//! PyO3 bindings: a thin layer that converts arguments and delegates to the engine.

use pyo3::prelude::*;

mod checkpoint_ids;
mod chunks;
mod crew;
mod direct;
mod direct_async;
mod direct_stream;
mod direct_thread;
mod engine;
mod held_run;
mod models;
mod task_config;
mod thread_save;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    engine::register(m)?;
    checkpoint_ids::register(m)?;
    chunks::register(m)?;
    crew::register(m)?;
    direct::register(m)?;
    direct_async::register(m)?;
    direct_stream::register(m)?;
    direct_thread::register(m)?;
    models::register(m)?;
    Ok(())
}
