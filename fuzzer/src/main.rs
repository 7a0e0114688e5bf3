//! `fuzzer`: command-line entry point.
fn main() {}
