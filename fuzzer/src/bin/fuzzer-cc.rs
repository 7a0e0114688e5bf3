//! `fuzzer-cc`: C compiler wrapper that instruments for coverage and links the fuzzing runtime.
//!
//! Use it as `make CC=/path/to/fuzzer-cc`. It runs the real compiler (`FUZZER_CC_COMPILER`,
//! else `clang` from PATH, else `gcc`) with the user's arguments unchanged, plus:
//!
//! * compile steps (`-c`/`-S`, or a compile+link with source files): `-g` and
//!   `-fsanitize-coverage=trace-pc-guard,trace-cmp` (clang) or `trace-pc,trace-cmp` (gcc): edges,
//!   and integer comparisons for CmpLog (ignored unless the fuzzer traces the run); and
//!   `-fno-builtin-strcmp` and the like, so string compares stay calls the preload can log.
//!   clang links its UBSan runtime when `-fsanitize-coverage` is on a link line, which turns a
//!   SIGSEGV into exit status 1; so a clang compile+link also gets `-fno-sanitize-link-runtime`
//!   (unless a sanitizer was asked for), and link-only lines get no coverage flag at all.
//! * links of an executable: `libruntime.a` (next to this program, or `FUZZER_RUNTIME_LIB`),
//!   `-Wl,-u,SYM` for the runtime's entry points, `-Wl,--export-dynamic-symbol=SYM` for the
//!   two start functions the LD_PRELOAD library looks up with `dlsym`, and the native
//!   libraries Rust's std needs.
//! * `FUZZER_CC_SANITIZER=address` (any `-fsanitize=` value): `-fsanitize=address` on compile
//!   and link lines.
//!
//! Preprocessing (`-E`, `-M`, `-MM`), queries without input files (`--version`, `-print-*`)
//! and anything else are passed through. `FUZZER_CC_DEBUG=1` prints the final command.

use std::env;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Runtime symbols the linker must keep although the program does not reference them.
const KEEP_SYMBOLS: &[&str] = &[
    "__afl_manual_init",
    "sockfuzz_start_forkserver",
    "sockfuzz_shm_input",
    "sockfuzz_clear_map",
    "__sockfuzz_init",
    "__sockfuzz_shm_marker",
    "__afl_area_ptr",
    "__sanitizer_cov_trace_pc_guard",
    "__sanitizer_cov_trace_pc_guard_init",
    "__sanitizer_cov_trace_pc",
];

/// Keep string and memory compares as calls the LD_PRELOAD library can log for CmpLog: the
/// compilers otherwise expand `strcmp(buf, "literal")` into loads and compares that no
/// `trace-cmp` callback sees (clang does it at -O1 for fixed-size buffers).
const NO_BUILTIN_COMPARES: &[&str] = &[
    "-fno-builtin-strcmp",
    "-fno-builtin-strncmp",
    "-fno-builtin-strcasecmp",
    "-fno-builtin-strncasecmp",
    "-fno-builtin-memcmp",
    "-fno-builtin-bcmp",
];

/// Runtime symbols the LD_PRELOAD library finds with `dlsym(RTLD_DEFAULT, ..)`.
const EXPORT_SYMBOLS: &[&str] =
    &["__afl_manual_init", "sockfuzz_start_forkserver", "sockfuzz_shm_input", "sockfuzz_clear_map"];

/// `cargo rustc --release -p runtime -- --print native-static-libs` (Rust 1.95, x86_64 glibc).
const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// Options whose value is the next argument (so that value is not an input file).
const OPTIONS_WITH_VALUE: &[&str] = &[
    "-o",
    "-I",
    "-D",
    "-U",
    "-L",
    "-l",
    "-T",
    "-u",
    "-z",
    "-include",
    "-imacros",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-iprefix",
    "-iwithprefix",
    "-isysroot",
    "-MF",
    "-MT",
    "-MQ",
    "-Xlinker",
    "-Xassembler",
    "-Xpreprocessor",
    "-Xclang",
    "-target",
    "--param",
    "-aux-info",
    "-dumpbase",
    "-dumpdir",
    "-e",
];

const SOURCE_EXTENSIONS: &[&str] = &["c", "i", "cc", "cp", "cpp", "cxx", "c++", "C", "ii", "m"];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Clang,
    Gcc,
}

/// What one compiler invocation does, as far as the wrapper cares.
#[derive(Default, Debug)]
struct Invocation {
    inputs: usize,
    sources: bool,
    compile_only: bool,
    preprocess_only: bool,
    not_executable: bool,
    user_sanitizer: bool,
}

fn classify(args: &[OsString]) -> Invocation {
    let mut inv = Invocation::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let s = arg.to_string_lossy();
        match s.as_ref() {
            "-c" | "-S" => inv.compile_only = true,
            "-E" | "-M" | "-MM" | "-fsyntax-only" => inv.preprocess_only = true,
            "-shared" | "-r" => inv.not_executable = true,
            "-x" => {
                inv.sources = true; // explicit language: treat the inputs as sources
                args.next();
            }
            "-" => {
                inv.inputs += 1;
                inv.sources = true;
            }
            s if OPTIONS_WITH_VALUE.contains(&s) => {
                args.next();
            }
            s if s.starts_with("-fsanitize=") => inv.user_sanitizer = true,
            s if s.starts_with('-') => {}
            s if s.starts_with('@') => {
                inv.inputs += 1; // response file: may hold sources
                inv.sources = true;
            }
            _ => {
                inv.inputs += 1;
                let ext = Path::new(arg).extension().and_then(OsStr::to_str).unwrap_or("");
                inv.sources |= SOURCE_EXTENSIONS.contains(&ext);
            }
        }
    }
    inv
}

/// The full argument list for the real compiler.
fn build_args(kind: Kind, args: &[OsString], sanitizer: Option<&str>) -> Result<Vec<OsString>, String> {
    let inv = classify(args);
    let mut out: Vec<OsString> = args.to_vec();
    if inv.preprocess_only || inv.inputs == 0 {
        return Ok(out);
    }
    let mut add = |flag: &str| out.push(flag.into());
    if inv.compile_only || inv.sources {
        add("-g");
        add(match kind {
            Kind::Clang => "-fsanitize-coverage=trace-pc-guard,trace-cmp",
            Kind::Gcc => "-fsanitize-coverage=trace-pc,trace-cmp",
        });
        NO_BUILTIN_COMPARES.iter().for_each(|flag| add(flag));
        if kind == Kind::Clang && !inv.compile_only && sanitizer.is_none() && !inv.user_sanitizer {
            add("-fno-sanitize-link-runtime"); // no UBSan runtime: crashes stay signals
        }
    }
    if let Some(sanitizer) = sanitizer {
        add(&format!("-fsanitize={sanitizer}"));
    }
    if inv.compile_only || inv.not_executable {
        return Ok(out);
    }
    let runtime = runtime_lib()?;
    for sym in KEEP_SYMBOLS {
        out.push(format!("-Wl,-u,{sym}").into());
    }
    for sym in EXPORT_SYMBOLS {
        out.push(format!("-Wl,--export-dynamic-symbol={sym}").into());
    }
    out.push(runtime.into());
    out.push("-Wl,--push-state,--as-needed".into());
    out.extend(NATIVE_LIBS.iter().map(OsString::from));
    out.push("-Wl,--pop-state".into());
    Ok(out)
}

fn runtime_lib() -> Result<PathBuf, String> {
    let path = match env::var_os("FUZZER_RUNTIME_LIB").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = env::current_exe().map_err(|e| format!("cannot locate fuzzer-cc itself: {e}"))?;
            exe.with_file_name("libruntime.a")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "runtime library not found: {} (build it with `cargo build --release --workspace`, \
             or point FUZZER_RUNTIME_LIB at libruntime.a)",
            path.display()
        ))
    }
}

/// Look `name` up like the shell does (a name with a slash is a path).
fn which(name: &OsStr) -> Option<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `path` is this wrapper (e.g. `clang` symlinked to fuzzer-cc): would loop forever.
fn is_self(path: &Path) -> bool {
    let me = env::current_exe().and_then(|p| p.canonicalize());
    matches!((me, path.canonicalize()), (Ok(me), Ok(p)) if me == p)
}

fn find_compiler() -> Result<(PathBuf, Kind), String> {
    let path = match env::var_os("FUZZER_CC_COMPILER").filter(|v| !v.is_empty()) {
        Some(name) => {
            let path = which(&name)
                .ok_or_else(|| format!("compiler not found: FUZZER_CC_COMPILER={}", name.to_string_lossy()))?;
            if is_self(&path) {
                return Err("FUZZER_CC_COMPILER points to fuzzer-cc itself".into());
            }
            path
        }
        None => ["clang", "gcc"]
            .iter()
            .filter_map(|name| which(OsStr::new(name)))
            .find(|path| !is_self(path))
            .ok_or("compiler not found: neither clang nor gcc is on PATH (or set FUZZER_CC_COMPILER)")?,
    };
    let kind = compiler_kind(&path);
    Ok((path, kind))
}

/// clang or gcc, by name, else by asking `--version` (e.g. for `cc`).
fn compiler_kind(path: &Path) -> Kind {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.contains("clang") {
        return Kind::Clang;
    }
    if name.contains("gcc") || name.contains("g++") {
        return Kind::Gcc;
    }
    match Command::new(path).arg("--version").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("clang") => Kind::Clang,
        _ => Kind::Gcc,
    }
}

fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=+/.,:@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let sanitizer = env::var("FUZZER_CC_SANITIZER").ok().filter(|s| !s.is_empty());
    let prepared =
        find_compiler().and_then(|(compiler, kind)| Ok((compiler, build_args(kind, &args, sanitizer.as_deref())?)));
    let (compiler, final_args) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("fuzzer-cc: error: {message}");
            return ExitCode::FAILURE;
        }
    };
    if env::var_os("FUZZER_CC_DEBUG").is_some_and(|v| v == "1") {
        let words: Vec<String> = std::iter::once(compiler.as_os_str())
            .chain(final_args.iter().map(OsString::as_os_str))
            .map(shell_quote)
            .collect();
        eprintln!("fuzzer-cc: {}", words.join(" "));
    }
    let err = Command::new(&compiler).args(&final_args).exec();
    eprintln!("fuzzer-cc: error: cannot run {}: {err}", compiler.display());
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn classifies_steps() {
        let compile = classify(&args("-O2 -c server.c -o server.o"));
        assert!(compile.compile_only && compile.sources && compile.inputs == 1);
        let link = classify(&args("-o server server.o util.o -L lib -lpthread"));
        assert!(!link.compile_only && !link.sources && link.inputs == 2);
        let one_shot = classify(&args("-Wall -o server server.c -lpthread"));
        assert!(one_shot.sources && !one_shot.compile_only);
        assert_eq!(classify(&args("--version")).inputs, 0);
        assert!(classify(&args("-E x.c")).preprocess_only);
        assert!(classify(&args("-shared -o lib.so a.o")).not_executable);
        assert!(classify(&args("-fsanitize=undefined a.o")).user_sanitizer);
        assert_eq!(classify(&args("-include config.h -MF deps.d -c a.c")).inputs, 1);
    }

    #[test]
    fn clang_keeps_the_coverage_flag_off_link_only_lines() {
        let compile = build_args(Kind::Clang, &args("-c a.c"), None).unwrap();
        assert!(compile.iter().any(|a| a == "-fsanitize-coverage=trace-pc-guard,trace-cmp"));
        assert!(!compile.iter().any(|a| a == "-fno-sanitize-link-runtime"));
        let version = build_args(Kind::Gcc, &args("--version"), Some("address")).unwrap();
        assert_eq!(version, args("--version"));
    }
}
