//! Task ids: text in UUID form, as LangGraph's, and unique without a random draw per id.
//!
//! An id is a per-process random prefix (64 bits) and a counter (64 bits). The counter makes
//! ids unique within the process; the prefix, drawn at start and again in a forked child
//! ([`reseed`]), keeps them apart from other processes'. The counter goes through an
//! invertible mix, so consecutive ids do not look alike and distinct counters still give
//! distinct ids.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static PREFIX: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Draws a new random prefix (std's per-process hash keys, the clock and the pid).
pub fn reseed() {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    PREFIX.store(hasher.finish(), Ordering::Relaxed);
}

/// splitmix64's finaliser: a bijection on u64 (each step is invertible).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A task id's text: 36 ASCII bytes, `8-4-4-4-12` hex digits.
#[derive(Clone, Copy)]
pub struct TaskId([u8; 36]);

impl TaskId {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes the `digits` low hex digits of `value` into `out`, most significant first.
fn put_hex(out: &mut [u8], value: u64) {
    let digits = out.len();
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX[((value >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
}

/// The id for counter value `n` under `prefix` (by hand: `format!` costs ~20 times more, and
/// the direct driver makes one per task).
fn format_id(prefix: u64, n: u64) -> TaskId {
    let low = mix(n);
    // The version nibble says "random" (4), as `uuid.uuid4()` text does.
    let high = (prefix & !0xf000) | 0x4000;
    let mut text = [b'-'; 36];
    put_hex(&mut text[0..8], high >> 32);
    put_hex(&mut text[9..13], (high >> 16) & 0xffff);
    put_hex(&mut text[14..18], high & 0xffff);
    put_hex(&mut text[19..23], low >> 48);
    put_hex(&mut text[24..36], low & 0xffff_ffff_ffff);
    TaskId(text)
}

static DRAWS: AtomicU64 = AtomicU64::new(0);

/// 64 bits that differ from draw to draw and from process to process (the prefix mixed with
/// a counter of their own), for the random part of checkpoint ids.
pub fn random_bits() -> u64 {
    mix(PREFIX.load(Ordering::Relaxed) ^ mix(DRAWS.fetch_add(1, Ordering::Relaxed)))
}

/// A new task id.
pub fn next_id() -> TaskId {
    format_id(
        PREFIX.load(Ordering::Relaxed),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}

/// A new task id, as a `String`.
pub fn next() -> String {
    next_id().as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_and_uuid_shaped() {
        let ids: HashSet<String> = (0..100_000)
            .map(|n| format_id(7, n).as_str().to_owned())
            .collect();
        // The same text as the `format!` of the five groups.
        let prefix = 0xdead_beef_1234_5678u64;
        let (high, low) = ((prefix & !0xf000) | 0x4000, mix(12345));
        assert_eq!(
            format_id(prefix, 12345).as_str(),
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                high >> 32,
                (high >> 16) & 0xffff,
                high & 0xffff,
                low >> 48,
                low & 0xffff_ffff_ffff
            )
        );
        assert_eq!(ids.len(), 100_000);
        let id = next();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn reseeding_changes_the_prefix() {
        reseed();
        let a = next();
        reseed();
        let b = next();
        assert_ne!(a[..18], b[..18]);
    }

    #[test]
    fn ids_from_many_threads_are_distinct() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let ids: HashSet<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(ids.len(), 40_000);
    }
}
