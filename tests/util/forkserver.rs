//! The fuzzer's side of the AFL++ fork-server protocol, spoken by hand: a SysV coverage map,
//! the control and status pipes on fds 198 and 199, and a target started the way afl-fuzz and
//! LibAFL start one (the runtime tests drive the runtime's fork server with it).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// ASan as the fuzzer sets it for a target: a report ends in SIGABRT, no leak check.
pub const ASAN_OPTIONS: &str = "abort_on_error=1:detect_leaks=0:symbolize=0";

/// A SysV shared memory segment (the coverage map), removed on drop.
pub struct ShmMap {
    pub id: i32,
    ptr: *mut u8,
    len: usize,
}

impl ShmMap {
    pub fn new(len: usize) -> ShmMap {
        // SAFETY: plain syscall wrappers; the result is checked.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        // SAFETY: id is the segment we just created.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        assert!(ptr as isize != -1, "shmat: {}", std::io::Error::last_os_error());
        ShmMap { id, ptr: ptr.cast(), len }
    }

    pub fn clear(&self) {
        // SAFETY: ptr..ptr+len is our attached segment.
        unsafe { std::ptr::write_bytes(self.ptr, 0, self.len) };
    }

    /// Write `bytes` at `offset` (the control page's fields).
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY: within our attached segment (asserted).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) };
    }

    pub fn read(&self, len: usize) -> Vec<u8> {
        // SAFETY: len <= self.len (asserted); the target's writes are complete (it exited).
        assert!(len <= self.len);
        unsafe { std::slice::from_raw_parts(self.ptr, len) }.to_vec()
    }
}

impl Drop for ShmMap {
    fn drop(&mut self) {
        // SAFETY: detaching and removing the segment we created.
        unsafe {
            libc::shmdt(self.ptr.cast());
            libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

pub fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints; O_CLOEXEC keeps them out of other tests' children.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (File::from(OwnedFd::from_raw_fd(fds[0])), File::from(OwnedFd::from_raw_fd(fds[1]))) }
}

/// Read 4 bytes within `limit`; `None` on end of file.
pub fn read_u32(pipe: &mut File, limit: Duration) -> Option<u32> {
    let mut pfd = libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is a valid pollfd for an open descriptor.
    let ready = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
    assert!(ready > 0, "no message from the fork server within {limit:?}");
    let mut bytes = [0u8; 4];
    match pipe.read_exact(&mut bytes) {
        Ok(()) => Some(u32::from_ne_bytes(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
        Err(e) => panic!("read from the status pipe: {e}"),
    }
}

/// The program `cmd` starts gets `control_read` and `status_write` as fds 198 and 199, where
/// the fork server looks for them; the caller keeps both open until after the spawn.
pub fn forkserver_fds(cmd: &mut Command, control_read: &File, status_write: &File) {
    let (cr, sw) = (control_read.as_raw_fd(), status_write.as_raw_fd());
    // SAFETY: dup2 is async-signal-safe, and the source fds are open at the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(cr, 198) < 0 || libc::dup2(sw, 199) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A target started the way afl-fuzz / LibAFL start it: `__AFL_SHM_ID`, fds 198/199, and stdin
/// a file that is rewritten before each run.
pub struct Target {
    pub child: Child,
    pub control: Option<File>,
    status: File,
    pub input: File,
    map: ShmMap,
}

impl Target {
    pub fn start(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> Target {
        let map = ShmMap::new(1 << 16);
        let (control_read, control_write) = pipe();
        let (status_read, status_write) = pipe();
        let input = File::options().read(true).write(true).create(true).truncate(true).open(dir.join("input")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.env("__AFL_SHM_ID", map.id.to_string())
            .env_remove("__AFL_DEFER_FORKSRV")
            .env("ASAN_OPTIONS", ASAN_OPTIONS)
            .envs(env.iter().copied())
            .stdin(input.try_clone().unwrap()) // same open file: we rewind it for each run
            .stdout(File::create(dir.join("stdout")).unwrap())
            .stderr(File::create(dir.join("stderr")).unwrap());
        forkserver_fds(&mut cmd, &control_read, &status_write);
        let child = cmd.spawn().unwrap();
        drop((control_read, status_write)); // only the target holds these ends now
        Target { child, control: Some(control_write), status: status_read, input, map }
    }

    /// The 4-byte hello, or `None` if the status pipe closed without one.
    pub fn hello(&mut self) -> Option<u32> {
        read_u32(&mut self.status, Duration::from_secs(10))
    }

    /// One run: `(child pid, wait status, first map_size bytes of the map)`.
    pub fn run(&mut self, input: &[u8], map_size: usize) -> (i32, i32, Vec<u8>) {
        self.map.clear();
        self.input.set_len(0).unwrap();
        self.input.write_all_at(input, 0).unwrap();
        self.input.seek(SeekFrom::Start(0)).unwrap(); // shared offset with the target's stdin
        self.control.as_mut().unwrap().write_all(&0u32.to_ne_bytes()).unwrap();
        let pid = read_u32(&mut self.status, Duration::from_secs(10)).expect("fork server died before the pid") as i32;
        let status =
            read_u32(&mut self.status, Duration::from_secs(10)).expect("fork server died before the status") as i32;
        (pid, status, self.map.read(map_size))
    }
}

impl Drop for Target {
    /// Closing the control pipe makes the fork server exit; kill it (by pid) if it does not.
    fn drop(&mut self) {
        drop(self.control.take());
        let _ = super::wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}

/// Decode an old-protocol hello: `FS_OPT_ENABLED | FS_OPT_MAPSIZE | FS_OPT_SET_MAPSIZE(size)`.
pub fn hello_map_size(hello: u32) -> usize {
    assert_eq!(hello & 0xC000_0001, 0xC000_0001, "hello {hello:#x} lacks FS_OPT_ENABLED|FS_OPT_MAPSIZE");
    assert_eq!(hello & 0x3F00_0000, 0, "hello {hello:#x} announces options we do not implement");
    (((hello & 0x00ff_fffe) >> 1) + 1) as usize
}
