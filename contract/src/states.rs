//! The response-state map (`SOCKFUZZ_STATES_SHM`): a SysV segment of [`LEN`] bytes in which the
//! preload marks each transition between the status codes of a test case's responses, in the
//! order they arrive (the previous response's code, [`START`] before the first, then this
//! one's), as AFLNet's state feedback does. The fuzzer keeps an input that marks a transition no
//! earlier input marked, even without new edges: one queue entry per transition at most, so the
//! corpus gains at most [`LEN`] entries from it in a campaign (a few dozen in practice).

/// Bytes of the map: one per transition (hashed).
pub const LEN: usize = 1024;
/// The code before a test case's first response.
pub const START: u16 = 0;
/// The code of a reply that does not begin with an HTTP status line.
pub const NOT_HTTP: u16 = 1;

/// The map entry of the transition `prev -> code` (codes below 1000).
pub const fn slot(prev: u16, code: u16) -> usize {
    let key = prev as u32 * 1000 + code as u32;
    // Knuth's multiplicative hash: the top 10 bits of the product index the 1,024 entries.
    (key.wrapping_mul(2_654_435_761) >> 22) as usize
}
