//! Checkpoint ids: LangGraph's `str(uuid6(clock_seq=step))` made in one call; and the
//! channel version names of LangGraph's own savers.
//!
//! A checkpointed run makes an id every superstep (task ids hash it), so the text is built
//! here rather than from a Python integer. The timestamp rule is LangGraph's: 100 ns ticks
//! since the Gregorian epoch, and always later than the last id the process made, whose
//! timestamp the caller keeps (in LangGraph's own module, shared by both engines).

use pyo3::prelude::*;
use pyo3::types::PyString;

/// 100 ns ticks between the Gregorian epoch (1582-10-15) and the Unix one.
const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;

/// The id's text for `stamp` (100 ns ticks), `step` (its low 14 bits) and 48 random bits.
fn uuid6_text(stamp: u64, step: i64, random: u64) -> String {
    let value: u128 = (u128::from((stamp >> 12) & 0xFFFF_FFFF_FFFF) << 80)
        | (u128::from(0x6000 | (stamp & 0x0FFF)) << 64)
        | (u128::from(0x8000 | (step as u64 & 0x3FFF)) << 48)
        | u128::from(random & 0xFFFF_FFFF_FFFF);
    uuid_text(value)
}

/// `value`'s 32 lowercase hex digits, uuid-shaped (8-4-4-4-12). Made by hand: this runs a
/// few times every checkpointed step, and `format!` is most of its cost.
fn uuid_text(value: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for digit in 0..32 {
        if matches!(digit, 8 | 12 | 16 | 20) {
            text.push('-');
        }
        text.push(char::from(
            HEX[((value >> (124 - 4 * digit)) & 0xF) as usize],
        ));
    }
    text
}

/// The id's timestamp for `now_ns` (nanoseconds since the Unix epoch): later than `last`
/// (the timestamp of the process's last id, None for none).
fn uuid6_stamp(now_ns: u128, last: Option<u64>) -> u64 {
    let stamp = (now_ns / 100) as u64 + GREGORIAN_OFFSET;
    match last {
        Some(last) if stamp <= last => last + 1,
        _ => stamp,
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `datetime.fromtimestamp(micros / 1e6, timezone.utc).isoformat()` (no fraction on a whole
/// second), for microseconds since the Unix epoch.
fn iso_utc(micros: u128) -> String {
    let (secs, fraction) = ((micros / 1_000_000) as i64, (micros % 1_000_000) as u32);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (of_day / 3_600, of_day % 3_600 / 60, of_day % 60);
    if fraction == 0 {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}+00:00")
    } else {
        format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:06}+00:00"
        )
    }
}

/// A new checkpoint id for `step`, later than `last` (the timestamp of the process's last
/// id, None for none): `(id, its timestamp)`; the caller keeps the timestamp as the new last.
#[pyfunction]
#[pyo3(signature = (step, last))]
fn new_checkpoint_id(step: i64, last: Option<u64>) -> (String, u64) {
    let stamp = uuid6_stamp(now_ns(), last);
    (
        uuid6_text(stamp, step, crate::task_id::random_bits()),
        stamp,
    )
}

/// `new_checkpoint_id` and the checkpoint's `ts` (LangGraph's
/// `datetime.now(timezone.utc).isoformat()`) from one reading of the clock:
/// `(id, ts, id timestamp)`.
#[pyfunction]
#[pyo3(signature = (step, last))]
fn new_checkpoint_stamp(step: i64, last: Option<u64>) -> (String, String, u64) {
    checkpoint_stamp(step, last)
}

/// See [`new_checkpoint_stamp`].
pub(super) fn checkpoint_stamp(step: i64, last: Option<u64>) -> (String, String, u64) {
    let now = now_ns();
    let stamp = uuid6_stamp(now, last);
    (
        uuid6_text(stamp, step, crate::task_id::random_bits()),
        iso_utc(now / 1_000),
        stamp,
    )
}

/// The version name after `current` (its number before the first `.`; 0 for None), as the
/// `get_next_version` of LangGraph's `InMemorySaver`, `SqliteSaver` and `PostgresSaver` makes
/// it: `f"{n + 1:032}.{random.random():016}"`. A checkpointed step names a version each
/// step, and Python's float formatting is most of that method's 2.6 µs.
#[pyfunction]
#[pyo3(signature = (current))]
fn next_version_name(current: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    next_version_text(current)
}

/// See [`next_version_name`].
pub(super) fn next_version_text(current: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let number: u128 = match current {
        None => 0,
        Some(value) => match value.cast::<PyString>() {
            // (a name made before: the common case, tried first)
            Ok(text) => {
                let text = text.to_str()?;
                text.split('.')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|_| {
                        pyo3::exceptions::PyValueError::new_err(format!(
                            "invalid literal for int() with base 10: {text:?}"
                        ))
                    })?
            }
            Err(_) => value.extract::<u128>()?,
        },
    };
    let fraction = (crate::task_id::random_bits() >> 11) as f64 / (1u64 << 53) as f64;
    let mut name = zero_padded_32(number + 1);
    name.push('.');
    name.push_str(&python_float_016(fraction));
    Ok(name)
}

/// `format!("{n:032}")`, by hand for the numbers that fit (all in practice): `u128`'s
/// `Display` divides in 128 bits.
fn zero_padded_32(n: u128) -> String {
    let Ok(mut rest) = u64::try_from(n) else {
        return format!("{n:032}");
    };
    let mut digits = [b'0'; 32];
    let mut at = digits.len();
    while rest > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut text = String::with_capacity(52);
    text.extend(digits.iter().map(|&d| char::from(d)));
    text
}

/// LangGraph's task id of the bytes it hashes (the checkpoint id's 16, then the task's
/// namespace, step, name and path): the XXH3-128 digest's hex, uuid-shaped.
pub(super) fn task_id_text(key: &[u8]) -> String {
    uuid_text(xxhash_rust::xxh3::xxh3_128(key))
}

/// The 16 bytes of a checkpoint id's text (uuid-shaped hex), as task ids hash them.
pub(super) fn checkpoint_id_bytes(id: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut digits = id.bytes().filter(|&b| b != b'-');
    for byte in &mut out {
        let high = (digits.next()? as char).to_digit(16)?;
        let low = (digits.next()? as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    digits.next().is_none().then_some(out)
}

/// `format(x, "016")` for `x` in [0, 1): Python's shortest round-trip digits (as Rust's),
/// in exponent form (`9.5e-05`, two exponent digits at least) below 1e-4 as Python's repr
/// writes them, zero-padded on the left to 16 characters.
fn python_float_016(x: f64) -> String {
    let text = if x == 0.0 {
        "0.0".to_owned()
    } else if x < 1e-4 {
        let plain = format!("{x:e}"); // e.g. "9.5e-5"
        let (digits, exponent) = plain.split_once('e').expect("an exponent");
        let exponent: i32 = exponent.parse().expect("an integer exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{digits}e{sign}{:02}", exponent.abs())
    } else {
        format!("{x}")
    };
    format!("{text:0>16}")
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(next_version_name, m)?)?;
    m.add_function(wrap_pyfunction!(new_checkpoint_id, m)?)?;
    m.add_function(wrap_pyfunction!(new_checkpoint_stamp, m)?)?;
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

    #[test]
    fn iso_utc_matches_python() {
        // datetime.fromtimestamp(x, timezone.utc).isoformat()
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            iso_utc(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+00:00"
        );
        assert_eq!(
            iso_utc(1_796_497_622_123_456),
            "2026-12-05T19:07:02.123456+00:00"
        );
    }

    #[test]
    fn version_numbers_are_zero_padded_to_32() {
        assert_eq!(zero_padded_32(42), format!("{:032}", 42));
        assert_eq!(zero_padded_32(0), "0".repeat(32));
        assert_eq!(
            zero_padded_32(u128::from(u64::MAX)),
            format!("{:032}", u64::MAX)
        );
        assert_eq!(zero_padded_32(u128::MAX), format!("{:032}", u128::MAX));
    }

    #[test]
    fn task_ids_are_langgraph_s() {
        // xxhash.xxh3_128_hexdigest in Python
        assert_eq!(task_id_text(b""), "99aa06d3-0147-98d8-6001-c324468d497f");
        assert_eq!(task_id_text(b"abc"), "06b05ab6-733a-6185-78af-5f94892f3950");
        let bytes: Vec<u8> = (0..60).collect();
        assert_eq!(task_id_text(&bytes), "5790df47-b169-825b-0e80-e1344ad84e9f");
    }

    #[test]
    fn checkpoint_ids_read_as_bytes() {
        let id = "1f0d2c3e-4b5a-6978-8001-0123456789ab";
        let bytes = checkpoint_id_bytes(id).expect("16 bytes");
        assert_eq!(bytes[0], 0x1f);
        assert_eq!(bytes[15], 0xab);
        assert!(checkpoint_id_bytes("1f0d").is_none());
        assert!(checkpoint_id_bytes(&format!("{id}00")).is_none());
        assert!(checkpoint_id_bytes(&id.replace('1', "g")).is_none());
    }

    #[test]
    fn floats_are_formatted_as_python_formats_them() {
        // format(x, "016") in Python
        assert_eq!(python_float_016(0.0), "00000000000000.0");
        assert_eq!(python_float_016(0.5), "00000000000000.5");
        assert_eq!(python_float_016(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(python_float_016(0.0001), "00000000000.0001");
        assert_eq!(python_float_016(9.5e-5), "0000000009.5e-05");
        assert_eq!(
            python_float_016(1.2345678901234566e-7),
            "1.2345678901234566e-07"
        );
    }
}
