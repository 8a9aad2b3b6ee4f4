//! One Paver process per SQLite file. SQLite itself would let a second
//! process open the database, and the two would then each run the
//! executor, the dispatcher and the schedulers on it: SQLite's locks make
//! every statement safe, not every claim (the job and outbox claims count
//! on row locks only PostgreSQL has, and on one process's leases). So a
//! process that serves a SQLite database holds an exclusive advisory lock
//! on a file beside it (`<database>.lock`, `flock(2)` through `fs4`) for
//! as long as it runs; the kernel lets it go when the process ends, even
//! by SIGKILL. Commands that only read (`paver audit export`, `paver docs
//! …`) do not take it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StorageError;

/// The held lock; dropping it lets the file go.
#[derive(Debug)]
pub struct ProcessLock {
    path: PathBuf,
    _file: File,
}

impl ProcessLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The SQLite file a `sqlite:` URL names; `None` for PostgreSQL and for
/// an in-memory database.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    let in_memory =
        file.is_empty() || file == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!in_memory).then(|| PathBuf::from(file))
}

/// Takes the process lock of the SQLite database `url` names (`Ok(None)`
/// for PostgreSQL and in-memory databases, which need none). Fails at
/// once, naming the file, when another process holds it.
pub fn lock_database(url: &str) -> Result<Option<ProcessLock>, StorageError> {
    let Some(db_file) = sqlite_file(url) else {
        return Ok(None);
    };
    let mut name = db_file.clone().into_os_string();
    name.push(".lock");
    let path = PathBuf::from(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let io = |source| StorageError::LockFile {
        path: path.display().to_string(),
        source,
    };
    // Not truncated on open: the holder's pid in it is what the error
    // below reports.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // Called through the trait: std's own `File::try_lock` is newer than
    // the crate's minimum Rust version.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "its pid not yet written".to_owned(),
                h => h.to_owned(),
            };
            return Err(StorageError::InUse {
                database: db_file.display().to_string(),
                holder,
            });
        }
        Err(fs4::TryLockError::Error(e)) => return Err(io(e)),
    }
    // Who holds it, for the next one's error message.
    file.set_len(0).map_err(io)?;
    write!(file, "pid {}", std::process::id()).map_err(io)?;
    Ok(Some(ProcessLock { path, _file: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_are_locked() {
        assert_eq!(
            sqlite_file("sqlite://var/paver.db"),
            Some(PathBuf::from("var/paver.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/x/paver.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x/paver.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://:memory:"), None);
        assert_eq!(
            sqlite_file("sqlite://shared?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn a_second_lock_on_one_file_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/paver.db", dir.path().display());
        let first = lock_database(&url).unwrap().expect("a file database");
        let err = lock_database(&url).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("{}/paver.db", dir.path().display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        assert!(lock_database(&url).unwrap().is_some());
        assert!(lock_database("sqlite::memory:").unwrap().is_none());
    }
}
