//! The end-to-end tests, one test binary (one build, one link; ripgrep's layout): a module per
//! area and `util`, the helpers they share. A test that starts a campaign holds
//! [`util::exclusive`], since campaigns pin clients to cores: they run one at a time.

mod util;

mod build;
mod clients;
mod fuzz;
mod gdb;
mod hangs;
mod http;
mod leaks;
mod multicore;
mod oracle;
mod preload;
mod replay;
mod runtime;
mod screen;
mod servers;
mod soak;
mod tools;
