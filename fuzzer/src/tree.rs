//! Copying a folder tree: a source folder into OUT/build, a web root for each instance.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Copy the tree `src` into `dest` (created), leaving out `.git` and the paths in `skip`.
pub fn copy_tree(src: &Path, dest: &Path, skip: &[PathBuf]) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name == OsStr::new(".git") || path.canonicalize().is_ok_and(|p| skip.contains(&p)) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&path, &dest.join(&name), skip)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&path)?, dest.join(&name))?;
        } else {
            std::fs::copy(&path, dest.join(&name))?;
        }
    }
    Ok(())
}
