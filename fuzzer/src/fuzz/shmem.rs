//! Shared memory that never outlives the campaign.
//!
//! LibAFL's SysV segments (LLMP pages, the restarter's state map) and our coverage and CmpLog
//! maps are removed only by a clean exit, so Ctrl-C or a killed instance used to leave 256 MiB
//! segments behind. Here each segment is marked for removal (`IPC_RMID`) as soon as it exists:
//! Linux frees it when the last process detaches, and until then still lets other processes
//! (the broker, a fork server) attach it by id.

use libafl::Error;
use libafl_bolts::shmem::{ShMem, ShMemId, ShMemProvider, UnixShMem, UnixShMemProvider};

#[derive(Clone, Debug, Default)]
pub struct SelfRemovingShMemProvider(UnixShMemProvider);

impl ShMemProvider for SelfRemovingShMemProvider {
    type ShMem = UnixShMem;

    fn new() -> Result<Self, Error> {
        Ok(SelfRemovingShMemProvider(UnixShMemProvider::new()?))
    }

    fn new_shmem(&mut self, map_size: usize) -> Result<UnixShMem, Error> {
        let shmem = self.0.new_shmem(map_size)?;
        let id: i32 = shmem.id().into();
        // SAFETY: shmctl on the segment just created (and attached) here; IPC_RMID takes no buffer.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        Ok(shmem)
    }

    fn shmem_from_id_and_size(&mut self, id: ShMemId, size: usize) -> Result<UnixShMem, Error> {
        self.0.shmem_from_id_and_size(id, size)
    }
}
