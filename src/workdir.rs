//! The work directory: private (mode 0700), locked by the run that uses it.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct WorkDir {
    path: PathBuf,
    /// Held for the life of the run; the OS releases the lock when the process ends.
    _lock: File,
}

/// Creates a directory (and its parents) readable by its owner only.
pub fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).with_context(|| {
        format!(
            "create work directory {}: choose another with --dir",
            path.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

impl WorkDir {
    /// Creates (or reuses) the directory and takes its lock.
    pub fn open(path: &Path) -> Result<WorkDir> {
        create_private_dir(path)?;
        let lock_path = path.join("neoncopy.lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| {
                format!(
                    "open {} (is the work directory writable? choose another with --dir)",
                    lock_path.display()
                )
            })?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            bail!(
                "work directory {} is in use by another neoncopy (pid {}): wait for it to finish or use another --dir",
                path.display(),
                holder.trim()
            );
        }
        lock.set_len(0)?;
        lock.seek(SeekFrom::Start(0))?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(WorkDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}
