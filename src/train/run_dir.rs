//! The folder a training run writes, made safe to reuse: checked before anything is opened or removed,
//! replaced only once the new run has something to show, and recovered after a kill at any point.
//!
//! A run starts with [`RunDir::check`] (before its inputs are read: nothing on disk changes), then
//! [`RunDir::begin`] once every input has been opened and checked. With `--force` the old run is moved
//! aside into a hidden sibling, not deleted; [`RunGuard::finish`] deletes it when the new run has exported
//! its weights. A run that fails before its first checkpoint puts the old one back (or leaves no folder),
//! so a refused or crashed `--force` loses nothing.
//!
//! Checkpoints are replaced through a staging folder and two renames (`util::atomic::StagingDir`); a kill
//! between the renames leaves the complete copies under hidden names. [`recover_checkpoint`] finds the
//! newest complete one and puts it back in place, and removes the stale copies.

use std::path::{Component, Path, PathBuf};

use super::run::{CHECKPOINT_DIR, MANIFEST_FILE, METRICS_FILE, TrainError};
use crate::util::IoContext;
use crate::util::atomic::parent_of;

/// The file a checkpoint writes last: a checkpoint folder holding it is complete.
const STATE_FILE: &str = "state.json";
const REPLACED_PREFIX: &str = ".storytool-replaced-";

/// A run folder that passed the checks of [`RunDir::check`]; nothing has been written yet.
#[derive(Debug)]
pub struct RunDir {
    out: PathBuf,
    resume: bool,
    force: bool,
}

impl RunDir {
    /// Checks, without changing anything, that `out` may hold this run: it is none of `inputs` (and neither
    /// inside nor around one); to resume, it holds a checkpoint (recovered if a kill interrupted its
    /// replacement); otherwise it is absent or empty, or `force` is given and it is a storytool run.
    pub fn check(out: &Path, resume: bool, force: bool, inputs: &[&Path]) -> Result<RunDir, TrainError> {
        let out_full = absolute(out);
        for input in inputs {
            let input_full = absolute(input);
            if out_full.starts_with(&input_full) || input_full.starts_with(&out_full) {
                return Err(TrainError::Input(format!(
                    "the output folder `{}` is, holds or lies inside the input `{}`\n\nhint: write the run to a folder of its own",
                    out.display(),
                    input.display()
                )));
            }
        }
        if resume {
            recover_checkpoint(out)?;
            if !out.join(CHECKPOINT_DIR).join(STATE_FILE).is_file() {
                return Err(TrainError::NoCheckpoint(out.to_path_buf()));
            }
        } else if out.exists() && !is_empty_dir(out) {
            if !force {
                return Err(TrainError::RunExists(out.to_path_buf()));
            }
            if !is_training_run(out) {
                return Err(TrainError::Input(format!(
                    "`{}` is not a storytool training run (no `{CHECKPOINT_DIR}/`, `{METRICS_FILE}` or `{MANIFEST_FILE}`); `--force` replaces only runs\n\nhint: choose another `--out`, or remove the folder yourself",
                    out.display()
                )));
            }
        }
        Ok(RunDir { out: out.to_path_buf(), resume, force })
    }

    /// Makes the folder ready once every input has been checked: a forced run moves the old one aside.
    pub fn begin(self) -> Result<RunGuard, TrainError> {
        let existed = self.out.exists();
        let mut replaced = None;
        if !self.resume && self.force && existed && !is_empty_dir(&self.out) {
            let parent = parent_of(&self.out);
            let holder = tempfile::Builder::new()
                .prefix(REPLACED_PREFIX)
                .tempdir_in(parent)
                .path_context("create a folder in", parent)?
                .keep();
            let old = holder.join("old");
            std::fs::rename(&self.out, &old).path_context("move aside", &self.out)?;
            replaced = Some(holder);
        }
        std::fs::create_dir_all(&self.out).path_context("create folder", &self.out)?;
        Ok(RunGuard { out: self.out, created: !existed || replaced.is_some(), replaced, finished: false })
    }
}

/// A run in progress. Dropped without [`finish`](RunGuard::finish) (an error or a panic): if the new run
/// wrote a checkpoint it stays (resumable) and the old one is deleted; otherwise the new folder is removed
/// and the old run, if any, is put back.
#[derive(Debug)]
pub struct RunGuard {
    out: PathBuf,
    /// The folder did not hold this run before: it may be removed if nothing worth keeping was written.
    created: bool,
    /// The hidden folder holding the replaced run (as `old`).
    replaced: Option<PathBuf>,
    finished: bool,
}

impl RunGuard {
    /// The run is complete: the replaced run, if any, is deleted.
    pub fn finish(mut self) -> Result<(), TrainError> {
        self.finished = true;
        if let Some(holder) = self.replaced.take() {
            std::fs::remove_dir_all(&holder).path_context("remove", &holder)?;
        }
        Ok(())
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let resumable = self.out.join(CHECKPOINT_DIR).join(STATE_FILE).is_file();
        if resumable {
            if let Some(holder) = self.replaced.take() {
                let _ = std::fs::remove_dir_all(holder);
            }
            return;
        }
        if self.created {
            let _ = std::fs::remove_dir_all(&self.out);
        }
        if let Some(holder) = self.replaced.take() {
            if std::fs::rename(holder.join("old"), &self.out).is_ok() {
                let _ = std::fs::remove_dir_all(holder);
            }
        }
    }
}

/// Puts the newest complete checkpoint of `out` in place: `checkpoint/`, a staging copy that was complete
/// but not yet renamed (`.checkpoint.partial-*`), or the previous one moved aside (`.storytool-replaced-*/old`)
/// when a kill fell between the two renames. Stale copies are removed. Returns the step in place, if any.
pub fn recover_checkpoint(out: &Path) -> Result<Option<u64>, TrainError> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    let in_place = out.join(CHECKPOINT_DIR);
    let staging_prefix = format!(".{CHECKPOINT_DIR}.partial-");
    let mut copies: Vec<(PathBuf, PathBuf)> = Vec::new(); // (folder to remove, checkpoint folder)
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(&staging_prefix) {
            copies.push((path.clone(), path));
        } else if name.starts_with(REPLACED_PREFIX) {
            copies.push((path.clone(), path.join("old")));
        }
    }
    let mut best: Option<(u64, PathBuf)> = checkpoint_step(&in_place).map(|step| (step, in_place.clone()));
    for (_, folder) in &copies {
        if let Some(step) = checkpoint_step(folder)
            && best.as_ref().is_none_or(|(best_step, _)| step > *best_step)
        {
            best = Some((step, folder.clone()));
        }
    }
    if let Some((_, folder)) = &best
        && *folder != in_place
    {
        if in_place.exists() {
            std::fs::remove_dir_all(&in_place).path_context("remove", &in_place)?;
        }
        std::fs::rename(folder, &in_place).path_context("move into place", &in_place)?;
    }
    for (remove, _) in copies {
        if remove.exists() {
            std::fs::remove_dir_all(&remove).path_context("remove", &remove)?;
        }
    }
    Ok(best.map(|(step, _)| step))
}

/// The step of a complete checkpoint folder (its state file written last, atomically), or `None`.
fn checkpoint_step(folder: &Path) -> Option<u64> {
    let bytes = std::fs::read(folder.join(STATE_FILE)).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    state.get("step")?.as_u64()
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// What every trainer's folder holds from its first step on.
fn is_training_run(path: &Path) -> bool {
    path.is_dir()
        && (path.join(CHECKPOINT_DIR).is_dir()
            || path.join(METRICS_FILE).is_file()
            || path.join(MANIFEST_FILE).is_file())
}

/// `path` made absolute and free of `.`/`..` and links where it exists, so that two spellings of one
/// folder compare equal.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    // The nearest existing ancestor, canonicalized, then the rest as written (without `.` and `..`).
    let mut rest = Vec::new();
    let mut ancestor = path.to_path_buf();
    loop {
        if let Ok(canonical) = ancestor.canonicalize() {
            let mut full = canonical;
            for part in rest.iter().rev() {
                full.push(part);
            }
            return full;
        }
        match (ancestor.file_name(), ancestor.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                ancestor = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() };
            }
            _ => {
                let cwd = std::env::current_dir().unwrap_or_default();
                return cwd.join(path).components().filter(|part| !matches!(part, Component::CurDir)).collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_checkpoint(folder: &Path, step: u64) {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("model.bpk"), step.to_string()).unwrap();
        std::fs::write(folder.join(STATE_FILE), format!("{{\"step\": {step}, \"epoch\": 0}}")).unwrap();
    }

    #[test]
    fn a_kill_between_the_renames_is_recovered() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        // The old checkpoint moved aside, the new complete one still under its staging name, and a stale
        // incomplete staging folder from an earlier kill.
        write_checkpoint(&out.join(format!("{REPLACED_PREFIX}abc")).join("old"), 250);
        write_checkpoint(&out.join(".checkpoint.partial-xyz"), 500);
        std::fs::create_dir_all(out.join(".checkpoint.partial-old")).unwrap();
        assert_eq!(recover_checkpoint(&out).unwrap(), Some(500));
        assert_eq!(std::fs::read_to_string(out.join(CHECKPOINT_DIR).join("model.bpk")).unwrap(), "500");
        let names: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, [CHECKPOINT_DIR]);
        // The first rename done, the second not: the previous checkpoint is the newest complete one.
        std::fs::rename(out.join(CHECKPOINT_DIR), root.path().join("moved")).unwrap();
        write_checkpoint(&out.join(format!("{REPLACED_PREFIX}def")).join("old"), 500);
        assert_eq!(recover_checkpoint(&out).unwrap(), Some(500));
        assert!(out.join(CHECKPOINT_DIR).join(STATE_FILE).is_file());
    }

    #[test]
    fn force_refuses_inputs_and_folders_that_are_not_runs() {
        let root = tempfile::tempdir().unwrap();
        let corpus = root.path().join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        std::fs::write(corpus.join("manifest.json"), "{}").unwrap();
        let error = RunDir::check(&corpus, false, true, &[&corpus]).unwrap_err().to_string();
        assert!(error.contains("input"), "{error}");
        let error = RunDir::check(&corpus.join("run"), false, true, &[&corpus]).unwrap_err().to_string();
        assert!(error.contains("input"), "{error}");
        let photos = root.path().join("photos");
        std::fs::create_dir_all(&photos).unwrap();
        std::fs::write(photos.join("a.jpg"), "x").unwrap();
        let error = RunDir::check(&photos, false, true, &[&corpus]).unwrap_err().to_string();
        assert!(error.contains("not a storytool training run"), "{error}");
        assert!(photos.join("a.jpg").is_file());
    }

    #[test]
    fn a_forced_run_that_fails_early_puts_the_old_run_back() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(METRICS_FILE), "old").unwrap();
        {
            let guard = RunDir::check(&out, false, true, &[]).unwrap().begin().unwrap();
            assert!(!out.join(METRICS_FILE).exists());
            std::fs::write(out.join(METRICS_FILE), "new").unwrap();
            drop(guard);
        }
        assert_eq!(std::fs::read_to_string(out.join(METRICS_FILE)).unwrap(), "old");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1, "nothing left beside the run");

        let guard = RunDir::check(&out, false, true, &[]).unwrap().begin().unwrap();
        write_checkpoint(&out.join(CHECKPOINT_DIR), 10);
        guard.finish().unwrap();
        assert!(out.join(CHECKPOINT_DIR).is_dir() && !out.join(METRICS_FILE).exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);

        // A fresh run that fails before any checkpoint leaves no folder to block the next one.
        let fresh = root.path().join("fresh");
        drop(RunDir::check(&fresh, false, false, &[]).unwrap().begin().unwrap());
        assert!(!fresh.exists());
    }
}
