//! The `fuzzer` commands, one module each: its arguments (clap) and a `run` that calls the
//! library and returns the exit status. `fuzz` is the default command, the whole campaign.

pub mod build;
pub mod fuzz;
pub mod gdb;
pub mod grammar;
pub mod hex;
pub mod plot;
pub mod run;
pub mod send;
pub mod showmap;
pub mod triage;
