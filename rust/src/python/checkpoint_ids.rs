//! Checkpoint ids: LangGraph's `str(uuid6(clock_seq=step))` made in one call.
//!
//! A checkpointed run makes an id every superstep (task ids hash it), so the text is built
//! here rather than from a Python integer. The timestamp rule is LangGraph's: 100 ns ticks
//! since the Gregorian epoch, and always later than the last id the process made, whose
//! timestamp the caller keeps (in LangGraph's own module, shared by both engines).

use pyo3::prelude::*;

/// 100 ns ticks between the Gregorian epoch (1582-10-15) and the Unix one.
const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;

/// The id's text for `stamp` (100 ns ticks), `step` (its low 14 bits) and 48 random bits.
fn uuid6_text(stamp: u64, step: i64, random: u64) -> String {
    let value: u128 = (u128::from((stamp >> 12) & 0xFFFF_FFFF_FFFF) << 80)
        | (u128::from(0x6000 | (stamp & 0x0FFF)) << 64)
        | (u128::from(0x8000 | (step as u64 & 0x3FFF)) << 48)
        | u128::from(random & 0xFFFF_FFFF_FFFF);
    let h = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A new checkpoint id for `step`, later than `last` (the timestamp of the process's last
/// id, None for none): `(id, its timestamp)`; the caller keeps the timestamp as the new last.
#[pyfunction]
#[pyo3(signature = (step, last))]
fn new_checkpoint_id(step: i64, last: Option<u64>) -> (String, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() / 100) as u64);
    let mut stamp = now + GREGORIAN_OFFSET;
    if let Some(last) = last {
        if stamp <= last {
            stamp = last + 1;
        }
    }
    (
        uuid6_text(stamp, step, crate::task_id::random_bits()),
        stamp,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(new_checkpoint_id, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_langgraph_layout() {
        // uuid6 fields: time_high 48 bits, version 6 + time_low 12, variant + clock_seq 14.
        let text = uuid6_text(0x0123_4567_89AB_CDEF, 5, 0xABCD_EF01_2345);
        assert_eq!(text, "12345678-9abc-6def-8005-abcdef012345");
        assert_eq!(&uuid6_text(1, -1, 0)[19..23], "bfff");
    }
}
