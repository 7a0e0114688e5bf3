//! The `fuzzer` library: build a student's HTTP server with coverage, check that it can be
//! driven, fuzz it with LibAFL, and report what was found. The `fuzzer` binary (`main.rs`) only
//! parses its command line and calls [`cmd`]; `fuzzer-cc` (`bin/`, the compiler wrapper that
//! `make` runs) stands alone.
//!
//! Reading order: the campaign's four stages, one folder each, in the order its data flows
//! ([`cmd::fuzz`] walks them): [`build`] -> [`check`] -> [`fuzz`] -> [`report`]. Below them the
//! services they share: the [`runner`] (one run of a server under the preload), [`gdb`],
//! [`comux`] (a test case of several connections: [`comux::Comux`], the one form the mutators
//! and the minimizer edit, and played over real TCP as `fuzzer send` does), and small pieces
//! named for what they do. Nothing below a stage imports a stage, and no stage imports a later
//! one.

pub mod cmd;

// Stages.
pub mod build;
pub mod check;
pub mod fuzz;
pub mod report;

// Services.
pub mod assets;
pub mod bugs;
pub mod comux;
pub mod explain;
pub mod gdb;
pub mod hex;
pub mod locate;
pub mod port;
pub mod runner;
pub mod tree;
