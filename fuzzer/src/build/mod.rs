//! The build step: copy the student's sources into the output folder and build them there with
//! `make CC=fuzzer-cc`, never touching the original tree.

use crate::runner::tail;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Clone, Debug)]
pub struct BuildArgs {
    /// Your server's source folder: where `make` builds it (for pserv, its src/ folder).
    #[arg(short = 's', long, value_name = "DIR")]
    pub src_dir: Option<PathBuf>,
    /// Output folder for the build and the fuzzing results.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = "fuzz_out")]
    pub out_dir: PathBuf,
    /// Name of the program `make` builds, if it is not `server`.
    #[arg(long, value_name = "NAME", default_value = "server")]
    pub binary: String,
    /// `address`: also build with AddressSanitizer (`OUT/server-fuzz-address`) and fuzz that
    /// build too, beside the plain one; `none`: the plain build only.
    #[arg(long, value_name = "NAME", value_enum, default_value_t = Sanitizer::Address)]
    pub sanitizer: Sanitizer,
    /// The C compiler fuzzer-cc wraps (default: clang if installed, else gcc).
    #[arg(long, value_name = "CC")]
    pub compiler: Option<String>,
    /// Show the compiler's output.
    #[arg(short, long)]
    pub verbose: bool,
    /// The folder your server expects to be started in (one that serves `./htdocs`, say): it is
    /// copied into OUT/cwd, and every copy of the server runs there [default: the copy of
    /// --src-dir it was built in; with --server, the current folder]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanitizer {
    Address,
    None,
}

/// The instrumented builds of the server, and the folders each runs in.
#[derive(Clone, Debug)]
pub struct Built {
    pub plain: PathBuf,
    /// The AddressSanitizer build, unless switched off or the compiler could not make one.
    pub asan: Option<PathBuf>,
    /// The working directory of each (the copy of the sources it was built in; `None`: the
    /// fuzzer's own, for a server given with --server).
    pub plain_cwd: Option<PathBuf>,
    pub asan_cwd: Option<PathBuf>,
}

/// Build the instrumented server, and its ASan twin unless `--sanitizer none`.
pub fn build(args: &BuildArgs) -> Result<Built> {
    let src = args.src_dir()?;
    if !src.is_dir() {
        bail!(
            "the source folder {} does not exist: pass the folder that holds your server's Makefile with --src-dir",
            src.display()
        );
    }
    if !["Makefile", "makefile", "GNUmakefile"].iter().any(|m| src.join(m).is_file()) {
        bail!("{} has no Makefile: --src-dir must be the folder where running `make` builds your server (for pserv, its src/ folder)", src.display());
    }
    let wrapper = crate::locate::sibling("fuzzer-cc")?;
    let (plain, plain_cwd) = build_one(args, &wrapper, None)?;
    let asan = match args.sanitizer {
        Sanitizer::None => None,
        // Most student bugs are memory errors only ASan turns into crashes; but a compiler
        // without ASan support must not stop the plain campaign.
        Sanitizer::Address => match build_one(args, &wrapper, Some("address")) {
            Ok(built) => Some(built),
            Err(e) => {
                println!("[build] no AddressSanitizer build ({e:#}): fuzzing the plain build only");
                None
            }
        },
    };
    let (asan, asan_cwd) = asan.unzip();
    Built { plain, asan, plain_cwd: Some(plain_cwd), asan_cwd }.in_working_copy(args)
}

impl Built {
    /// Every build runs in the copy of `--cwd DIR`, if one was asked for (`working_copy`).
    pub fn in_working_copy(self, args: &BuildArgs) -> Result<Self> {
        Ok(match working_copy(args)? {
            Some(cwd) => Built { plain_cwd: Some(cwd.clone()), asan_cwd: Some(cwd), ..self },
            None => self,
        })
    }
}

/// The copy of `--cwd DIR` (OUT/cwd) the servers run in, if one was asked for: a copy, so that
/// what a server writes there never lands in the student's folder.
pub fn working_copy(args: &BuildArgs) -> Result<Option<PathBuf>> {
    let Some(cwd) = &args.cwd else { return Ok(None) };
    if !cwd.is_dir() {
        bail!("--cwd {} is not a folder: give the folder your server is started in", cwd.display());
    }
    let dest = std::path::absolute(args.out_dir.join("cwd"))?;
    println!("[build] copying {} to {} (the servers' working folder)", cwd.display(), dest.display());
    copy_sources(cwd, &dest, &args.out_dir)?;
    Ok(Some(dest))
}

impl BuildArgs {
    pub fn src_dir(&self) -> Result<&Path> {
        self.src_dir
            .as_deref()
            .context("missing --src-dir DIR: the folder where `make` builds your server (for pserv, its src/ folder)")
    }
}

/// One build in its copy of the sources: the server (copied to `OUT/server-fuzz*`) and the copy,
/// where it runs (so that a server that serves `./htdocs` finds it).
fn build_one(args: &BuildArgs, wrapper: &Path, sanitizer: Option<&str>) -> Result<(PathBuf, PathBuf)> {
    let src = args.src_dir()?;
    let suffix = sanitizer.map(|s| format!("-{s}")).unwrap_or_default();
    let dir = std::path::absolute(args.out_dir.join(format!("build{suffix}")))?;
    println!("[build] copying {} to {}", src.display(), dir.display());
    copy_sources(src, &dir, &args.out_dir)?;
    // Objects copied from the student's own builds would be linked uninstrumented.
    let _ = Command::new("make").arg("clean").current_dir(&dir).output();
    let before = executables(&dir);
    let what = sanitizer.map(|s| format!(" with {s} sanitizer")).unwrap_or_default();
    println!("[build] building your server with fuzzer-cc (coverage instrumentation{what})...");
    let mut make = Command::new("make");
    make.arg(format!("CC={}", wrapper.display())).current_dir(&dir);
    if let Some(s) = sanitizer {
        make.env("FUZZER_CC_SANITIZER", s);
    }
    if let Some(cc) = &args.compiler {
        make.env("FUZZER_CC_COMPILER", cc);
    }
    let out = make.output().context("cannot run `make`: is it installed (apt-get install make)?")?;
    let log = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    if let (Some(s), false) = (sanitizer, out.status.success()) {
        // The compiler's own complaint, not make's "*** Error 1" after it.
        let text = String::from_utf8_lossy(&log);
        let reason = text.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("make")).unwrap_or_default();
        bail!("make with -fsanitize={s} failed: {}", reason.trim());
    }
    if args.verbose || !out.status.success() {
        print!("{}", String::from_utf8_lossy(&log));
    }
    if !out.status.success() {
        bail!(
            "make failed in the copy at {} ({}). Last lines:\n{}\nFix the error (does `make` work in {}?) and run again.",
            dir.display(),
            out.status,
            tail(&log, 12),
            src.display()
        );
    }
    let server = find_server(&dir, &args.binary, &before)?;
    if !is_instrumented(&server)? {
        bail!(
            "{} was built without our instrumentation: the Makefile must compile and link with $(CC) \
             (not a fixed `gcc` or `cc`), so that `make CC=fuzzer-cc` takes effect",
            server.display()
        );
    }
    // Absolute: the server runs in another folder (`dir`).
    let dest = std::path::absolute(args.out_dir.join(format!("server-fuzz{suffix}")))?;
    std::fs::copy(&server, &dest).with_context(|| format!("cannot copy {} to {}", server.display(), dest.display()))?;
    println!("[build] built {}", dest.display());
    Ok((dest, dir))
}

/// Copy `src` into a fresh `dest`, leaving out version control and the output folder itself
/// (it may live inside the source folder).
fn copy_sources(src: &Path, dest: &Path, out: &Path) -> Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("cannot remove the old build {}", dest.display()))?;
    }
    // Created first: only an existing path canonicalizes, and an output folder inside `src`
    // left out of `skip` would be copied into itself without end.
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let skip: Vec<PathBuf> = [out.canonicalize().ok(), dest.canonicalize().ok()].into_iter().flatten().collect();
    crate::tree::copy_tree(src, dest, &skip)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dest.display()))
}

/// Executable regular files directly in `dir`.
fn executables(dir: &Path) -> HashSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return HashSet::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .collect()
}

/// `NAME` if make produced it, else the only new executable.
fn find_server(dir: &Path, name: &str, before: &HashSet<PathBuf>) -> Result<PathBuf> {
    let named = dir.join(name);
    if named.is_file() {
        return Ok(named);
    }
    let new: Vec<PathBuf> = executables(dir).into_iter().filter(|p| !before.contains(p)).collect();
    match new.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("make succeeded but produced no program named `{name}` in {}: does `make` build your server there? (use --binary NAME if it has another name)", dir.display()),
        many => bail!(
            "make produced no `{name}` but several programs: {}; choose one with --binary NAME",
            many.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Our runtime (or AFL++'s) leaves the NUL-terminated `__AFL_SHM_ID` in the binary.
pub fn is_instrumented(binary: &Path) -> Result<bool> {
    contains(binary, b"__AFL_SHM_ID\0")
}

/// Whether the binary's runtime is ours (fuzzer-cc), whose CmpLog map is the layout LibAFL
/// reads, rather than AFL++'s, whose layout changes with its version.
pub fn has_our_runtime(binary: &Path) -> Result<bool> {
    contains(binary, b"sockfuzz_shm_input\0")
}

/// Whether the binary's runtime serves persistent runs (a fuzzer-cc build of this version).
pub fn runs_persistently(binary: &Path) -> Result<bool> {
    contains(binary, b"sockfuzz_clear_map\0")
}

fn contains(binary: &Path, needle: &[u8]) -> Result<bool> {
    let bytes = std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    Ok(memchr::memmem::find(&bytes, needle).is_some())
}
