//! Writes that never leave a half-written artifact behind.
//!
//! Files are written to a temporary sibling and renamed over the target. Artifact folders are built in a
//! hidden staging folder next to the target and renamed into place only when complete, so an interrupted
//! run leaves no folder that looks whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{IoContext, PathError};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PathError> {
    let parent = parent_of(path);
    let mut file =
        shared_builder(".storytool-", 0o644).tempfile_in(parent).path_context("create a temporary file in", parent)?;
    file.write_all(bytes).path_context("write", file.path())?;
    file.as_file().sync_all().path_context("flush", file.path())?;
    file.persist(path).map_err(|error| PathError::new("replace", path, error.error))?;
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically (manifests, indexes, training state).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), PathError> {
    write_file(path, &serde_json::to_vec_pretty(value).expect("artifact metadata always serializes"))
}

/// A folder being built next to its final place; removed on drop unless [`StagingDir::commit`] ran.
#[derive(Debug)]
pub struct StagingDir {
    staging: Option<PathBuf>,
    target: PathBuf,
}

/// Why an artifact folder could not be created or put in place.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("`{0}` already exists\n\nhint: pass `--force` to replace it")]
    Exists(PathBuf),
    #[error(transparent)]
    Io(#[from] PathError),
}

impl StagingDir {
    /// Checks that `target` may be written (absent, or `force`) and creates the staging folder beside it.
    pub fn new(target: &Path, force: bool) -> Result<StagingDir, StagingError> {
        if target.exists() && !force {
            return Err(StagingError::Exists(target.to_path_buf()));
        }
        let parent = parent_of(target);
        std::fs::create_dir_all(parent).path_context("create folder", parent)?;
        let name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = shared_builder(&format!(".{name}.partial-"), 0o755)
            .tempdir_in(parent)
            .path_context("create a staging folder in", parent)?
            .keep();
        Ok(StagingDir { staging: Some(staging), target: target.to_path_buf() })
    }

    /// Where to write the artifact's files until it is committed.
    pub fn path(&self) -> &Path {
        self.staging.as_deref().expect("staging folder exists until commit")
    }

    /// Moves the finished folder into place, replacing an older one (only reachable with `force`).
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        let staging = self.staging.take().expect("commit runs once");
        if self.target.exists() {
            let parent = parent_of(&self.target);
            let trash = tempfile::Builder::new()
                .prefix(".storytool-replaced-")
                .tempdir_in(parent)
                .path_context("create a folder in", parent)?
                .keep();
            let old = trash.join("old");
            std::fs::rename(&self.target, &old).path_context("move aside", &self.target)?;
            std::fs::rename(&staging, &self.target).path_context("move into place", &self.target)?;
            std::fs::remove_dir_all(&trash).path_context("remove", &trash)?;
        } else {
            std::fs::rename(&staging, &self.target).path_context("move into place", &self.target)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            let _ = std::fs::remove_dir_all(staging);
        }
    }
}

/// A temporary-file builder whose files get ordinary permissions (`mode` on Unix, before the umask):
/// temporary files are private by default, but artifacts are shared like any file the user creates.
fn shared_builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

/// The folder `path` is in (`.` for a bare name): where its temporary siblings go.
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_folder_appears_only_on_commit_and_vanishes_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("corpus");
        {
            let staging = StagingDir::new(&target, false).unwrap();
            std::fs::write(staging.path().join("a"), b"1").unwrap();
            assert!(!target.exists());
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "dropped staging folder is removed");

        let staging = StagingDir::new(&target, false).unwrap();
        std::fs::write(staging.path().join("a"), b"1").unwrap();
        staging.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"1");

        assert!(matches!(StagingDir::new(&target, false), Err(StagingError::Exists(_))));
        let staging = StagingDir::new(&target, true).unwrap();
        std::fs::write(staging.path().join("b"), b"2").unwrap();
        staging.commit().unwrap();
        assert!(!target.join("a").exists() && target.join("b").exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1, "no leftovers beside the target");
    }

    #[test]
    fn write_file_replaces_whole_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("m.json");
        write_file(&path, b"first").unwrap();
        write_file(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
